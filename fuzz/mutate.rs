//! Seeded mutations of an input file's bytes.

/// SplitMix64: small, seedable and the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Numbers that sit on the edges: of integer types, of f64, of physics (zero, negative), and
/// not numbers at all.
const EDGES: [&str; 32] = [
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "0.0",
    "-1e-9",
    "1e-320",
    "5e-324",
    "1e308",
    "1.8e308",
    "nan",
    "inf",
    "-inf",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e30",
    "1e10",
    "1000000000",
    "65537",
    "255",
    "256",
    "1023",
    "1025",
    "0.999",
    "1.001",
    "100000",
];

/// A number from the edges, or a power of ten or two with a random sign.
pub fn number(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("1e{}", rng.below(80) as i64 - 40),
        1 => format!("{}", 1u128 << rng.below(70)),
        _ => EDGES[rng.below(EDGES.len() as u64) as usize].to_string(),
    }
}

/// One to three mutations of `text`.
pub fn mutate(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..1 + rng.below(3) {
        out = once(&out, rng);
    }
    out
}

fn once(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=3 => replace_number(text, rng),
        4 => replace_string(text, rng),
        5 => with_lines(text, rng, |lines, i, _| {
            lines.remove(i);
        }),
        6 => with_lines(text, rng, |lines, i, _| {
            let l = lines[i].clone();
            lines.insert(i, l);
        }),
        7 => with_lines(text, rng, |lines, i, j| lines.swap(i, j)),
        8 => {
            let cut = rng.below(text.len() as u64 + 1) as usize;
            text[..cut].to_vec()
        }
        _ => {
            let mut t = text.to_vec();
            let at = rng.below(t.len() as u64 + 1) as usize;
            let byte = [0xff, 0x00, b'"', b'[', b'=', b',', b'\n'][rng.below(7) as usize];
            t.insert(at, byte);
            t
        }
    }
}

/// Byte ranges of the numbers in `text`: a digit run, with a sign, point and exponent.
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts_word = i == 0 || !text[i - 1].is_ascii_alphanumeric() && text[i - 1] != b'_';
        if text[i].is_ascii_digit() && starts_word {
            let start = if i > 0 && text[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            let mut j = i;
            while j < text.len()
                && (text[j].is_ascii_digit()
                    || matches!(text[j], b'.' | b'e' | b'E' | b'_')
                    || (matches!(text[j], b'+' | b'-') && matches!(text[j - 1], b'e' | b'E')))
            {
                j += 1;
            }
            v.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    v
}

fn replace_number(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let spans = numbers(text);
    if spans.is_empty() {
        return text.to_vec();
    }
    let (a, b) = spans[rng.below(spans.len() as u64) as usize];
    let old = String::from_utf8_lossy(&text[a..b]).into_owned();
    let new = match rng.below(4) {
        0 => match old.parse::<f64>() {
            Ok(x) => {
                let f = [0.0, -1.0, 0.5, 2.0, 1e6, 1e-6, 1e12][rng.below(7) as usize];
                let y = x * f;
                if old.contains(['.', 'e']) {
                    format!("{y:e}")
                } else {
                    format!("{}", y as i128)
                }
            }
            Err(_) => number(rng),
        },
        _ => number(rng),
    };
    [&text[..a], new.as_bytes(), &text[b..]].concat()
}

fn replace_string(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let quotes: Vec<usize> = (0..text.len()).filter(|&i| text[i] == b'"').collect();
    if quotes.len() < 2 {
        return text.to_vec();
    }
    let k = rng.below(quotes.len() as u64 / 2) as usize * 2;
    let (a, b) = (quotes[k] + 1, quotes[k + 1]);
    let long = "x".repeat(5000);
    let new = ["", "x", "../nope.toml", "bf16", "fp4", "-1", &long][rng.below(7) as usize];
    [&text[..a], new.as_bytes(), &text[b..]].concat()
}

fn with_lines(
    text: &[u8],
    rng: &mut Rng,
    f: impl FnOnce(&mut Vec<Vec<u8>>, usize, usize),
) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len() as u64;
    let (i, j) = (rng.below(n) as usize, rng.below(n) as usize);
    f(&mut lines, i, j);
    lines.join(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_whole_with_their_sign_and_exponent() {
        let t = b"a = -1.5e-3\nb = [2, 30]\nx1 = 4";
        let got: Vec<&[u8]> = numbers(t).iter().map(|&(a, b)| &t[a..b]).collect();
        assert_eq!(got, [&b"-1.5e-3"[..], b"2", b"30", b"4"]);
    }

    #[test]
    fn a_seed_gives_the_same_mutation() {
        let t = b"count = 32\nrate = 1.5\nname = \"x\"\n";
        let a = mutate(t, &mut Rng::new(5));
        let b = mutate(t, &mut Rng::new(5));
        assert_eq!(a, b);
    }
}
