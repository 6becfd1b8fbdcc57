//! A pipeline of stages over micro-batches (GPipe's forward schedule, as inference runs it, and
//! as Vidur simulates pipeline parallelism): micro-batch j enters stage s when stage s has
//! finished micro-batch j − 1 and stage s − 1 has finished micro-batch j and sent its
//! activations. With S stages and m micro-batches of equal time t and free sends the makespan is
//! (m + S − 1)·t and each stage idles (S − 1)·t of it: the bubble, a share (S − 1)/(m + S − 1).

use serde::Serialize;

/// One micro-batch on one stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageSpan {
    /// The stage (0 first).
    pub stage: usize,
    /// The micro-batch (0 first).
    pub micro_batch: usize,
    /// When it starts on the stage (s).
    pub start: f64,
    /// When it ends there (s).
    pub end: f64,
}

/// A pipelined run: its spans, its makespan and each stage's busy time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// Every (stage, micro-batch) span, stage by stage, in micro-batch order.
    pub spans: Vec<StageSpan>,
    /// From the first start to the last end (s).
    pub makespan: f64,
    /// Time each stage computes (s).
    pub busy: Vec<f64>,
}

impl Pipeline {
    /// The share of stage-time idle in the makespan: 1 − Σ busy ÷ (stages × makespan).
    pub fn bubble(&self) -> f64 {
        let stages = self.busy.len() as f64;
        if self.makespan <= 0.0 || stages == 0.0 {
            return 0.0;
        }
        1.0 - self.busy.iter().sum::<f64>() / (stages * self.makespan)
    }

    /// Each stage's utilization: its busy time over the makespan.
    pub fn utilization(&self) -> Vec<f64> {
        self.busy
            .iter()
            .map(|b| {
                if self.makespan > 0.0 {
                    b / self.makespan
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// One micro-batch's activations over a stage boundary: `transfer` seconds holding the
/// boundary's link (its bytes over the bandwidth), then `latency` seconds in flight, which the
/// next send may overlap. A link carries one transfer at a time: a stage that finishes
/// micro-batches faster than its link moves them waits on the link, not on its own sends.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Send {
    /// Seconds the transfer holds the link.
    pub transfer: f64,
    /// Seconds from the transfer's end to the activations' arrival.
    pub latency: f64,
}

impl Send {
    /// The send's time from departure to arrival.
    pub fn time(&self) -> f64 {
        self.transfer + self.latency
    }
}

/// Schedules `times[s][j]` (stage s, micro-batch j, seconds), each micro-batch's activations
/// crossing each stage boundary as `send`. Stages all have the same micro-batches; an empty
/// input is an empty pipeline.
pub fn schedule(times: &[Vec<f64>], send: Send) -> Pipeline {
    let m = times.first().map_or(0, Vec::len);
    schedule_sends(times, &vec![send; m])
}

/// [`schedule`] with micro-batch j's activations crossing each stage boundary as `sends[j]`
/// (micro-batches of different sizes send different bytes).
pub fn schedule_sends(times: &[Vec<f64>], sends: &[Send]) -> Pipeline {
    let m = times.first().map_or(0, Vec::len).min(sends.len());
    let mut spans = Vec::with_capacity(times.len() * m);
    let mut prev_stage: Vec<f64> = vec![0.0; m];
    let mut busy = Vec::with_capacity(times.len());
    for (s, row) in times.iter().enumerate() {
        let (mut free, mut link_free) = (0.0_f64, 0.0_f64);
        let mut ends = Vec::with_capacity(m);
        for (j, &t) in row.iter().enumerate().take(m) {
            let ready = if s == 0 {
                0.0
            } else {
                link_free = prev_stage[j].max(link_free) + sends[j].transfer;
                link_free + sends[j].latency
            };
            let start = ready.max(free);
            free = start + t;
            ends.push(free);
            spans.push(StageSpan {
                stage: s,
                micro_batch: j,
                start,
                end: free,
            });
        }
        busy.push(row.iter().take(m).sum());
        prev_stage = ends;
    }
    let makespan = spans.iter().map(|x| x.end).fold(0.0, f64::max);
    Pipeline {
        spans,
        makespan,
        busy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(transfer: f64, latency: f64) -> Send {
        Send { transfer, latency }
    }

    #[test]
    fn a_uniform_pipeline_takes_m_plus_s_minus_one_steps() {
        for (stages, m) in [(1, 1), (1, 7), (2, 4), (4, 4), (4, 16), (8, 3)] {
            let t = 0.25;
            let p = schedule(&vec![vec![t; m]; stages], Send::default());
            let want = (m + stages - 1) as f64 * t;
            assert!((p.makespan - want).abs() < 1e-12, "S {stages} m {m}");
            let bubble = (stages - 1) as f64 / (m + stages - 1) as f64;
            assert!((p.bubble() - bubble).abs() < 1e-12, "S {stages} m {m}");
        }
    }

    #[test]
    fn one_stage_is_its_micro_batches_back_to_back_with_no_bubble() {
        let p = schedule(&[vec![1.0, 2.0, 0.5]], send(9.0, 0.0));
        assert_eq!(p.makespan, 3.5);
        assert_eq!(p.bubble(), 0.0);
        assert_eq!(p.utilization(), vec![1.0]);
    }

    #[test]
    fn each_boundary_adds_its_send_to_the_fill() {
        // S stages, m micro-batches of t, sends of c < t: the last micro-batch leaves the last
        // stage at (m + S − 1)·t + (S − 1)·c.
        let (stages, m, t, c) = (4, 6, 1.0, 0.125);
        let p = schedule(&vec![vec![t; m]; stages], send(c * 0.75, c * 0.25));
        let want = (m + stages - 1) as f64 * t + (stages - 1) as f64 * c;
        assert!((p.makespan - want).abs() < 1e-12);
        // No stage starts a micro-batch before the one before it has arrived.
        for x in &p.spans {
            if x.stage > 0 {
                let before = p
                    .spans
                    .iter()
                    .find(|y| y.stage == x.stage - 1 && y.micro_batch == x.micro_batch)
                    .unwrap();
                assert!(x.start >= before.end + c - 1e-12);
            }
        }
    }

    #[test]
    fn the_slowest_stage_sets_the_steady_rate() {
        // Stage 1 twice as slow: micro-batches leave it every 2 s after the fill.
        let p = schedule(&[vec![1.0; 5], vec![2.0; 5], vec![1.0; 5]], Send::default());
        assert!((p.makespan - (1.0 + 5.0 * 2.0 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn a_link_slower_than_the_stages_carries_one_transfer_at_a_time() {
        // Two stages of t, transfers of c > t and latency d: micro-batch j leaves stage 0 at
        // (j + 1)·t but the link frees at t + (j + 1)·c, so the last arrives at t + m·c + d and
        // the makespan is t + m·c + d + t (free sends' overlap would give m·t + c + d + t).
        let (m, t, c, d) = (5, 1.0, 3.0, 0.5);
        let p = schedule(&[vec![t; m], vec![t; m]], send(c, d));
        let want = t + m as f64 * c + d + t;
        assert!((p.makespan - want).abs() < 1e-12, "{}", p.makespan);
        // Latency overlaps: it is paid once in the makespan, not once per micro-batch.
        let q = schedule(&[vec![t; m], vec![t; m]], send(0.0, d));
        assert!((q.makespan - (m as f64 * t + d + t)).abs() < 1e-12);
    }
}
