//! A discrete-event fluid engine: tasks with dependencies draw on shared resources.
//!
//! Each task has a fixed `delay` (launch latency, paid first, drawing on nothing) and then a
//! *fluid* phase that needs `w_r` seconds of each resource `r` it uses (its time on that resource
//! at full rate: the roofline's compute and memory times). Alone it takes `T = max_r w_r` (the
//! roofline). Tasks that share resources get max-min fair shares by progressive filling: every
//! running task's speed, as a fraction of its solo speed, rises together until some resource is
//! full; the tasks using that resource stop there, the others rise on. So two equal tasks on one
//! resource each run at half speed, and a task that needs little of a shared resource (an xPU op
//! streaming through a narrow external path) leaves the rest to one that needs all of it (a PIM op
//! reading the banks). Every time a task starts or finishes, shares and finish times are
//! recomputed.
//!
//! Tasks on the same *stream* (a unit's in-order queue, as a GPU stream) run one after another
//! in submission order; tasks on different streams run at once and contend for what they share.
//! Ties are broken by task index, so a run is deterministic.

use std::collections::VecDeque;

/// Index of a resource (a unit's compute, a memory, a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(pub usize);

/// Index of a task in the list given to [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub usize);

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    /// In-order queue the task belongs to; `None` runs as soon as its dependencies are done.
    pub stream: Option<usize>,
    /// Fixed time before the fluid phase (seconds).
    pub delay: f64,
    /// Seconds of each resource at full rate.
    pub demands: Vec<(ResourceId, f64)>,
    /// Tasks that must finish first (earlier in the list).
    pub deps: Vec<TaskId>,
}

/// When a task ran.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Span {
    /// When its delay began, s.
    pub start: f64,
    /// When its fluid phase ended, s.
    pub end: f64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Each task's span, by task index.
    pub spans: Vec<Span>,
    /// Time the last task finished.
    pub makespan: f64,
    /// Seconds of full-rate use of each resource (≤ makespan).
    pub busy: Vec<f64>,
}

/// A task the engine cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A dependency on a task that does not come earlier in the list.
    #[error("task {task} depends on task {dep}, which does not come before it")]
    BadDependency {
        /// The task.
        task: usize,
        /// The task it depends on.
        dep: usize,
    },
    /// A demand on a resource the run does not have.
    #[error("task {task} uses resource {resource}, but there are only {resources}")]
    BadResource {
        /// The task.
        task: usize,
        /// The resource it names.
        resource: usize,
        /// Resources in the run.
        resources: usize,
    },
    /// A delay or demand that is negative, infinite or NaN.
    #[error("task {task} has a negative or non-finite delay or demand")]
    BadWork {
        /// The task.
        task: usize,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Delay(f64),
    Fluid(f64),
    Done,
}

/// Progress rates (fraction of the fluid work per second) of the `fluid` tasks, max-min fair in
/// speed relative to each task's solo speed.
fn fair_rates(tasks: &[Task], fluid: &[usize], resources: usize) -> Vec<f64> {
    let solo: Vec<f64> = fluid
        .iter()
        .map(|&i| tasks[i].demands.iter().map(|d| d.1).fold(0.0, f64::max))
        .collect();
    let mut speed = vec![0.0; fluid.len()];
    let mut frozen: Vec<bool> = solo.iter().map(|&t| t == 0.0).collect();
    let mut cap = vec![1.0f64; resources];
    let mut level: f64 = 0.0;
    while frozen.iter().any(|f| !f) {
        // Load per unit of speed that the unfrozen tasks put on each resource.
        let mut load = vec![0.0; resources];
        for (k, &i) in fluid.iter().enumerate().filter(|(k, _)| !frozen[*k]) {
            for &(r, w) in &tasks[i].demands {
                load[r.0] += w / solo[k];
            }
        }
        let mut step: f64 = 1.0 - level;
        for r in 0..resources {
            if load[r] > 0.0 {
                step = step.min(cap[r].max(0.0) / load[r]);
            }
        }
        level += step;
        for r in 0..resources {
            cap[r] -= step * load[r];
        }
        let full: Vec<bool> = (0..resources)
            .map(|r| load[r] > 0.0 && cap[r] <= 1e-12)
            .collect();
        for (k, &i) in fluid.iter().enumerate() {
            if frozen[k] {
                continue;
            }
            let saturated = tasks[i].demands.iter().any(|d| d.1 > 0.0 && full[d.0.0]);
            if saturated || level >= 1.0 - 1e-12 {
                speed[k] = level;
                frozen[k] = true;
            }
        }
    }
    speed
        .iter()
        .zip(&solo)
        .map(|(&s, &t)| if t == 0.0 { f64::INFINITY } else { s / t })
        .collect()
}

/// Relative tolerance under which two finish times count as the same event.
const EPS: f64 = 1e-12;

/// Runs `tasks` on `resources` resources from time 0.
pub fn run(tasks: &[Task], resources: usize) -> Result<Outcome, EngineError> {
    check(tasks, resources)?;
    // The one-pass path first: it needs none of the event loop's graph.
    Ok(serial(tasks, resources).unwrap_or_else(|| events(Run::build(tasks, resources))))
}

/// Checks every task's work, resources and dependencies (that they point backwards).
fn check(tasks: &[Task], resources: usize) -> Result<(), EngineError> {
    for (i, t) in tasks.iter().enumerate() {
        if !(t.delay.is_finite() && t.delay >= 0.0)
            || t.demands.iter().any(|d| !(d.1.is_finite() && d.1 >= 0.0))
        {
            return Err(EngineError::BadWork { task: i });
        }
        if let Some(&(r, _)) = t.demands.iter().find(|d| d.0.0 >= resources) {
            return Err(EngineError::BadResource {
                task: i,
                resource: r.0,
                resources,
            });
        }
        if let Some(d) = t.deps.iter().find(|d| d.0 >= i) {
            return Err(EngineError::BadDependency { task: i, dep: d.0 });
        }
    }
    Ok(())
}

/// The event loop: runs the checked tasks of `r` to the end.
fn events(mut r: Run) -> Outcome {
    let (tasks, resources) = (r.tasks, r.busy.len());
    for i in 0..tasks.len() {
        if r.startable(i) {
            r.start(i);
        }
    }
    while r.done < tasks.len() {
        // Rate of each active fluid task (fraction of its work per second) and the next event.
        let mut fluid: Vec<usize> = r
            .active
            .iter()
            .copied()
            .filter(|&i| matches!(r.state[i], State::Fluid(_)))
            .collect();
        fluid.sort_unstable();
        let rates = fair_rates(tasks, &fluid, resources);
        let dt = r.next_event(&fluid, &rates);
        if !dt.is_finite() {
            // Nothing active can progress: only possible with no active tasks (a cycle is
            // impossible, as dependencies point backwards), so every task is done.
            break;
        }
        let finished = r.advance(dt, &fluid, &rates);
        r.release(&finished);
    }
    Outcome {
        spans: r.spans,
        makespan: r.now,
        busy: r.busy,
    }
}

/// The run of `tasks` (already checked) when they all share one stream, so that exactly one
/// runs at a time, each with some work and at most one demand per resource: then each task runs
/// alone at full speed, and this loop does the same arithmetic as the event loop of [`run`]
/// (a lone task's fair share is speed 1, its rate `1 / solo`, its fluid phase `1 / rate`), in
/// one pass without allocating per event. `None` when the tasks are not of that form.
fn serial(tasks: &[Task], resources: usize) -> Option<Outcome> {
    let stream = tasks.first()?.stream?;
    let simple = |t: &Task| {
        let distinct = t
            .demands
            .iter()
            .enumerate()
            .all(|(k, d)| t.demands[..k].iter().all(|e| e.0 != d.0));
        let solo = t.demands.iter().map(|d| d.1).fold(0.0, f64::max);
        t.stream == Some(stream) && distinct && (t.delay > 0.0 || solo > 0.0)
    };
    if !tasks.iter().all(simple) {
        return None;
    }
    let mut spans = Vec::with_capacity(tasks.len());
    let mut busy = vec![0.0; resources];
    let mut now = 0.0f64;
    for t in tasks {
        spans.push(serial_step(&mut now, &mut busy, t.delay, &t.demands));
    }
    Some(Outcome {
        spans,
        makespan: now,
        busy,
    })
}

/// One task of a serial run (see `serial`) from `now`: its delay, then its fluid phase alone at
/// full speed; adds its full-rate seconds into `busy`, moves `now` to its end and returns its
/// span. A caller that knows its tasks would all share one stream, each with some work, valid
/// work and at most one demand per resource, gets what [`run`] gives from this without
/// building the tasks.
pub fn serial_step(
    now: &mut f64,
    busy: &mut [f64],
    delay: f64,
    demands: &[(ResourceId, f64)],
) -> Span {
    let start = *now;
    if delay > 0.0 {
        *now += delay;
    }
    let solo = demands.iter().map(|d| d.1).fold(0.0, f64::max);
    if solo > 0.0 {
        let rate = 1.0 / solo;
        let dt = 1.0 / rate;
        for &(res, w) in demands {
            busy[res.0] += rate * w * dt;
        }
        *now += dt;
    }
    Span { start, end: *now }
}

/// Rate of fluid task `i` among `fluid` (sorted) with `rates`.
fn rate_of(fluid: &[usize], rates: &[f64], i: usize) -> f64 {
    rates[fluid.binary_search(&i).unwrap_or(0)]
}

/// A run in progress: the task graph, each task's state, and the clock.
struct Run<'t> {
    tasks: &'t [Task],
    /// Unfinished dependencies of each task.
    pending: Vec<usize>,
    /// Tasks that depend on each task.
    succ: Vec<Vec<usize>>,
    /// Unfinished tasks of each stream, in order.
    streams: Vec<VecDeque<usize>>,
    state: Vec<State>,
    spans: Vec<Span>,
    /// Full-rate seconds used of each resource.
    busy: Vec<f64>,
    /// Started, unfinished tasks.
    active: Vec<usize>,
    now: f64,
    /// Tasks finished.
    done: usize,
}

impl<'t> Run<'t> {
    /// The graph of `tasks`, already checked by [`check`].
    fn build(tasks: &'t [Task], resources: usize) -> Self {
        let n = tasks.len();
        let mut pending = vec![0usize; n];
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut streams: Vec<VecDeque<usize>> = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            for d in &t.deps {
                succ[d.0].push(i);
            }
            pending[i] = t.deps.len();
            if let Some(s) = t.stream {
                if streams.len() <= s {
                    streams.resize_with(s + 1, Default::default);
                }
                streams[s].push_back(i);
            }
        }
        Run {
            tasks,
            pending,
            succ,
            streams,
            state: vec![State::Waiting; n],
            spans: vec![Span::default(); n],
            busy: vec![0.0; resources],
            active: Vec::new(),
            now: 0.0,
            done: 0,
        }
    }

    /// A task may start when its dependencies are done and it heads its stream.
    fn startable(&self, i: usize) -> bool {
        self.pending[i] == 0
            && self.tasks[i]
                .stream
                .is_none_or(|s| self.streams[s].front() == Some(&i))
    }

    /// Starts task `i` now: its delay, or its fluid phase when it has none.
    fn start(&mut self, i: usize) {
        self.spans[i].start = self.now;
        self.state[i] = State::Delay(self.tasks[i].delay);
        self.active.push(i);
        if self.tasks[i].delay == 0.0 {
            self.state[i] = State::Fluid(1.0);
        }
    }

    /// Time to the next event (a delay or a fluid phase ending); infinite when none is active.
    fn next_event(&self, fluid: &[usize], rates: &[f64]) -> f64 {
        let mut dt = f64::INFINITY;
        for &i in &self.active {
            let left = match self.state[i] {
                State::Delay(d) => d,
                State::Fluid(p) => p / rate_of(fluid, rates, i),
                _ => continue,
            };
            dt = dt.min(left);
        }
        dt
    }

    /// Advances every active task by `dt`; returns the tasks that finished, in index order.
    fn advance(&mut self, dt: f64, fluid: &[usize], rates: &[f64]) -> Vec<usize> {
        let tol = EPS * (self.now + dt).max(1e-300);
        // Advance every active task by dt and collect the ones that finish a phase.
        let mut finished = Vec::new();
        let mut entering = Vec::new();
        for &i in &self.active {
            match self.state[i] {
                State::Delay(d) => {
                    if d - dt <= tol {
                        entering.push(i);
                    } else {
                        self.state[i] = State::Delay(d - dt);
                    }
                }
                State::Fluid(p) => {
                    let r = rate_of(fluid, rates, i);
                    for &(res, w) in &self.tasks[i].demands {
                        self.busy[res.0] += r * w * dt;
                    }
                    if p - r * dt <= tol * r {
                        finished.push(i);
                    } else {
                        self.state[i] = State::Fluid(p - r * dt);
                    }
                }
                _ => {}
            }
        }
        self.now += dt;
        for &i in &entering {
            self.state[i] = State::Fluid(1.0);
        }
        // Tasks with no fluid work finish as their delay ends.
        let tasks = self.tasks;
        finished.extend(
            entering
                .iter()
                .copied()
                .filter(|&i| tasks[i].demands.iter().all(|d| d.1 == 0.0)),
        );
        finished.sort_unstable();
        for &i in &finished {
            self.state[i] = State::Done;
            self.spans[i].end = self.now;
            self.done += 1;
            if let Some(s) = tasks[i].stream {
                self.streams[s].pop_front();
            }
        }
        let state = &self.state;
        self.active.retain(|&i| state[i] != State::Done);
        finished
    }

    /// Releases the successors of `finished` and the next task of each of their streams, in
    /// index order.
    fn release(&mut self, finished: &[usize]) {
        let mut candidates: Vec<usize> = Vec::new();
        for &i in finished {
            for &j in &self.succ[i] {
                self.pending[j] -= 1;
                candidates.push(j);
            }
            if let Some(s) = self.tasks[i].stream {
                candidates.extend(self.streams[s].front().copied());
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for j in candidates {
            if self.state[j] == State::Waiting && self.startable(j) {
                self.start(j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(stream: Option<usize>, delay: f64, demands: &[(usize, f64)], deps: &[usize]) -> Task {
        Task {
            stream,
            delay,
            demands: demands.iter().map(|&(r, w)| (ResourceId(r), w)).collect(),
            deps: deps.iter().map(|&d| TaskId(d)).collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-9)
    }

    #[test]
    fn two_equal_tasks_sharing_a_resource_finish_together_at_twice_the_solo_time() {
        let t = [
            task(None, 0.0, &[(0, 1.0)], &[]),
            task(None, 0.0, &[(0, 1.0)], &[]),
        ];
        let o = run(&t, 1).unwrap();
        assert!(close(o.spans[0].end, 2.0) && close(o.spans[1].end, 2.0));
        assert!(close(o.busy[0], 2.0));
    }

    #[test]
    fn a_dependency_chain_adds_up() {
        let t = [
            task(None, 0.5, &[(0, 1.0)], &[]),
            task(None, 0.0, &[(1, 2.0)], &[0]),
            task(None, 0.25, &[], &[1]),
        ];
        let o = run(&t, 2).unwrap();
        assert!(close(o.spans[1].start, 1.5));
        assert!(close(o.makespan, 3.75));
    }

    #[test]
    fn a_task_needing_two_resources_runs_at_the_pace_of_the_scarcer() {
        // Task 0 needs 1 s of compute and 2 s of memory (memory-bound alone: 2 s). Task 1 needs
        // 2 s of memory only. While both stream, each gets half the memory: task 0 advances at
        // 1/4 per s, task 1 at 1/4 per s; both finish at 4 s.
        let t = [
            task(None, 0.0, &[(0, 1.0), (1, 2.0)], &[]),
            task(None, 0.0, &[(1, 2.0)], &[]),
        ];
        let o = run(&t, 2).unwrap();
        assert!(close(o.spans[0].end, 4.0), "{:?}", o.spans);
        assert!(close(o.spans[1].end, 4.0));
        assert!(close(o.busy[1], 4.0));
        assert!(close(o.busy[0], 1.0));
    }

    #[test]
    fn a_short_task_leaves_its_share_to_the_long_one() {
        // Shared for 2 s (each half rate: 1 s of work each), then the long task runs alone.
        let t = [
            task(None, 0.0, &[(0, 1.0)], &[]),
            task(None, 0.0, &[(0, 3.0)], &[]),
        ];
        let o = run(&t, 1).unwrap();
        assert!(close(o.spans[0].end, 2.0));
        assert!(close(o.spans[1].end, 4.0));
    }

    #[test]
    fn a_stream_runs_in_order_and_streams_overlap() {
        let t = [
            task(Some(0), 0.0, &[(0, 1.0)], &[]),
            task(Some(0), 0.0, &[(0, 1.0)], &[]),
            task(Some(1), 0.0, &[(1, 1.5)], &[]),
        ];
        let o = run(&t, 2).unwrap();
        assert!(close(o.spans[1].start, 1.0) && close(o.spans[1].end, 2.0));
        assert!(close(o.spans[2].end, 1.5));
        assert!(close(o.makespan, 2.0));
    }

    #[test]
    fn a_light_user_of_a_shared_resource_keeps_most_of_its_speed() {
        // Task 0 streams through its own narrow path (1 s) and needs a quarter of the shared
        // banks; task 1 needs all of the banks for 1 s. Max-min fair speeds: both at 0.8 of solo,
        // the banks full, both done at 1.25 s (an equal split would have left them idle).
        let t = [
            task(None, 0.0, &[(0, 1.0), (1, 0.25)], &[]),
            task(None, 0.0, &[(1, 1.0)], &[]),
        ];
        let o = run(&t, 2).unwrap();
        assert!(
            close(o.spans[0].end, 1.25) && close(o.spans[1].end, 1.25),
            "{:?}",
            o.spans
        );
        assert!(close(o.busy[1], 1.25));
    }

    #[test]
    fn one_stream_in_one_pass_is_the_event_loop_to_the_bit() {
        // Layer-like tasks on one stream: launches, compute- and memory-bound demands on three
        // resources, a delay-only task and a demand-only one, with awkward magnitudes.
        let mut t = Vec::new();
        for i in 0..40u32 {
            let x = f64::from(i);
            let delay = if i % 7 == 3 { 0.0 } else { 4.1e-6 + 1e-7 * x };
            let d = match i % 5 {
                0 => vec![],
                1 => vec![(0, 1.3e-5 * x.sin().abs()), (1, 7.7e-6 * (x + 0.3).sqrt())],
                2 => vec![(2, 3.3e-6 / (x + 1.0))],
                _ => vec![(0, 2e-6 * x), (1, 9.1e-6), (4, 1.7e-6 * x.cos().abs())],
            };
            let deps: Vec<usize> = (0..i as usize).rev().take(2).collect();
            t.push(task(Some(0), delay, &d, &deps));
        }
        t.retain(|t| t.delay > 0.0 || t.demands.iter().any(|d| d.1 > 0.0));
        for (k, x) in t.iter_mut().enumerate() {
            x.deps.retain(|d| d.0 < k);
        }
        check(&t, 5).unwrap();
        let fast = serial(&t, 5).expect("one stream");
        let slow = events(Run::build(&t, 5));
        assert_eq!(fast, slow);
        // A second stream puts the tasks back on the event loop.
        t[3].stream = Some(1);
        assert!(serial(&t, 5).is_none());
    }

    #[test]
    fn bad_tasks_are_errors() {
        assert!(matches!(
            run(&[task(None, 0.0, &[], &[0])], 1),
            Err(EngineError::BadDependency { .. })
        ));
        assert!(matches!(
            run(&[task(None, 0.0, &[(3, 1.0)], &[])], 1),
            Err(EngineError::BadResource { .. })
        ));
        assert!(matches!(
            run(&[task(None, -1.0, &[], &[])], 1),
            Err(EngineError::BadWork { .. })
        ));
    }
}
