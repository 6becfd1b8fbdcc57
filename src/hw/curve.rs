//! Efficiency as a function of size: a piecewise-linear curve in log10(size).

use serde::Serialize;
use thiserror::Error;

/// Points `(size, fraction of peak)`, interpolated linearly in log10(size) and held flat beyond
/// the first and last point (as Calculon's efficiency tables are).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    points: Vec<(f64, f64)>,
}

/// Why a list of points is not a curve.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CurveError {
    /// No points at all.
    #[error("a curve needs at least one [size, fraction] point")]
    Empty,
    /// A size at or below zero, or not finite.
    #[error("point {index}: size must be positive and finite, found {size}")]
    Size {
        /// The point's position in the list.
        index: usize,
        /// Its size.
        size: f64,
    },
    /// Sizes that do not strictly increase.
    #[error("point {index}: sizes must increase, found {size} after {prev}")]
    Order {
        /// The point's position in the list.
        index: usize,
        /// Its size.
        size: f64,
        /// The size of the point before it.
        prev: f64,
    },
    /// A fraction of peak outside (0, 1].
    #[error("point {index}: fraction of peak must be in (0, 1], found {fraction}")]
    Fraction {
        /// The point's position in the list.
        index: usize,
        /// Its fraction.
        fraction: f64,
    },
}

impl Curve {
    /// A curve through `points` (sizes strictly increasing and positive, fractions in (0, 1]).
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self, CurveError> {
        if points.is_empty() {
            return Err(CurveError::Empty);
        }
        for (index, &(size, fraction)) in points.iter().enumerate() {
            if !(size.is_finite() && size > 0.0) {
                return Err(CurveError::Size { index, size });
            }
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(CurveError::Fraction { index, fraction });
            }
            if index > 0 && size <= points[index - 1].0 {
                let prev = points[index - 1].0;
                return Err(CurveError::Order { index, size, prev });
            }
        }
        Ok(Curve { points })
    }

    /// A flat curve: the same fraction at every size.
    pub fn flat(fraction: f64) -> Result<Self, CurveError> {
        Curve::new(vec![(1.0, fraction)])
    }

    /// The flat curve at 1: the whole of the peak at every size.
    pub fn full() -> Self {
        Curve {
            points: vec![(1.0, 1.0)],
        }
    }

    /// The points, as given.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The fraction of peak at `size` (sizes at or below zero take the first point's value).
    pub fn at(&self, size: f64) -> f64 {
        let p = &self.points;
        let (first, last) = (p[0], p[p.len() - 1]);
        if size <= first.0 {
            return first.1;
        }
        if size >= last.0 {
            return last.1;
        }
        let i = p.partition_point(|&(x, _)| x <= size);
        let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
        let f = (size.log10() - x0.log10()) / (x1.log10() - x0.log10());
        y0 + f * (y1 - y0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_in_log_size_and_clamps() {
        let c = Curve::new(vec![(1e3, 0.2), (1e5, 0.8)]).unwrap();
        assert_eq!(c.at(10.0), 0.2);
        assert_eq!(c.at(1e9), 0.8);
        assert!((c.at(1e4) - 0.5).abs() < 1e-12);
        assert_eq!(c.at(1e5), 0.8);
    }

    #[test]
    fn rejects_bad_points() {
        assert_eq!(Curve::new(vec![]), Err(CurveError::Empty));
        assert!(matches!(
            Curve::new(vec![(1.0, 1.5)]),
            Err(CurveError::Fraction { .. })
        ));
        assert!(matches!(
            Curve::new(vec![(2.0, 0.5), (1.0, 0.5)]),
            Err(CurveError::Order { .. })
        ));
        assert!(matches!(
            Curve::new(vec![(0.0, 0.5)]),
            Err(CurveError::Size { .. })
        ));
    }
}
