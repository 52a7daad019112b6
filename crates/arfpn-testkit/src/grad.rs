//! Central finite differences in f64 against candle's autograd.

use std::fmt;

use candle_core::{DType, Tensor, Var};

use crate::error::{Result, TestkitError};

/// When a numeric derivative `n` and an autograd one `a` agree:
/// `|n - a| <= abs + rel * max(|n|, floor)`, or with `|a|` inside the maximum too when
/// `symmetric`. The constructors name the usual forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f64,
    /// Relative part, times the scale.
    pub rel: f64,
    /// Smallest scale the relative part multiplies (so near-zero derivatives are compared
    /// absolutely).
    pub floor: f64,
    /// Whether the scale is `max(|n|, |a|)` instead of `|n|`.
    pub symmetric: bool,
}

impl Tolerance {
    /// `|n - a| <= abs`: for functions that are linear or piecewise linear in the
    /// probed input, where central differences are exact up to rounding.
    pub const fn absolute(abs: f64) -> Self {
        Self {
            abs,
            rel: 0.0,
            floor: 0.0,
            symmetric: false,
        }
    }

    /// `|n - a| <= abs + rel * |n|`.
    pub const fn mixed(abs: f64, rel: f64) -> Self {
        Self {
            abs,
            rel,
            floor: 0.0,
            symmetric: false,
        }
    }

    /// `|n - a| <= rel * max(|n|, floor)`: a relative error, measured against `floor` for
    /// derivatives smaller than it.
    pub const fn relative(rel: f64, floor: f64) -> Self {
        Self {
            abs: 0.0,
            rel,
            floor,
            symmetric: false,
        }
    }

    /// The same rule with `max(|n|, |a|)` as the scale.
    pub const fn symmetric(self) -> Self {
        Self {
            symmetric: true,
            ..self
        }
    }

    /// The largest `|n - a|` this tolerance accepts.
    pub fn allowed(&self, numeric: f64, autograd: f64) -> f64 {
        let mut scale = numeric.abs().max(self.floor);
        if self.symmetric {
            scale = scale.max(autograd.abs());
        }
        self.abs + self.rel * scale
    }
}

/// Which elements of a tensor are probed (flat, row-major indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probes {
    /// Every element.
    All,
    /// At most `k` elements evenly spread: every `max(n / k, 1)`-th from the first.
    Spread(usize),
    /// Exactly these elements, in this order (repeats allowed).
    At(Vec<usize>),
}

impl Probes {
    /// The probed indices of a tensor of `len` elements.
    pub fn indices(&self, len: usize) -> Vec<usize> {
        match self {
            Probes::All => (0..len).collect(),
            Probes::Spread(k) => {
                let step = (len / (*k).max(1)).max(1);
                (0..len).step_by(step).take(*k).collect()
            }
            Probes::At(v) => v.clone(),
        }
    }
}

/// One checked variable: a name for the report, the variable, its probes.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    /// How reports and errors refer to the variable (e.g. `"conv1.weight"`).
    pub name: String,
    /// The variable to perturb; it must be f64.
    pub var: &'a Var,
    /// Which of its elements are checked.
    pub probes: Probes,
}

impl<'a> Target<'a> {
    /// A target with these fields.
    pub fn new(name: impl Into<String>, var: &'a Var, probes: Probes) -> Self {
        Self {
            name: name.into(),
            var,
            probes,
        }
    }

    /// Every element of `var`.
    pub fn all(name: impl Into<String>, var: &'a Var) -> Self {
        Self::new(name, var, Probes::All)
    }

    /// At most `k` evenly spread elements of `var`.
    pub fn spread(name: impl Into<String>, var: &'a Var, k: usize) -> Self {
        Self::new(name, var, Probes::Spread(k))
    }

    /// The given elements of `var`.
    pub fn at(name: impl Into<String>, var: &'a Var, indices: Vec<usize>) -> Self {
        Self::new(name, var, Probes::At(indices))
    }
}

/// One probed element: both derivatives and what the tolerance allowed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// The name of the target the element belongs to.
    pub target: String,
    /// The element's flat (row-major) index in the target.
    pub index: usize,
    /// The central difference `(f(x + eps) - f(x - eps)) / (2 eps)`.
    pub numeric: f64,
    /// The element of candle's gradient from `backward()` at the unperturbed point.
    pub autograd: f64,
    /// The largest `|numeric - autograd|` the tolerance accepts for this pair
    /// ([`Tolerance::allowed`]).
    pub allowed: f64,
}

impl ProbeResult {
    /// `|numeric - autograd|`.
    pub fn error(&self) -> f64 {
        (self.numeric - self.autograd).abs()
    }

    /// Within the tolerance (a NaN on either side never is).
    pub fn passed(&self) -> bool {
        self.error() <= self.allowed
    }

    /// How far outside the tolerance: `error / allowed` (infinite for NaN, or for any error
    /// when nothing was allowed).
    fn excess(&self) -> f64 {
        let e = self.error();
        if e.is_nan() {
            f64::INFINITY
        } else if self.allowed > 0.0 {
            e / self.allowed
        } else if e > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` element {}: numeric {:e} vs autograd {:e} (|difference| {:.3e}, allowed {:.3e})",
            self.target,
            self.index,
            self.numeric,
            self.autograd,
            self.error(),
            self.allowed
        )
    }
}

/// Every probe of a passed check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradReport {
    /// One entry per probed element, target by target in the order given, each in its
    /// probes' order.
    pub probes: Vec<ProbeResult>,
}

impl GradReport {
    /// Number of probed elements.
    pub fn checked(&self) -> usize {
        self.probes.len()
    }

    /// Probes whose autograd derivative is not exactly zero (to show a check exercised
    /// something).
    pub fn nonzero(&self) -> usize {
        self.probes.iter().filter(|p| p.autograd != 0.0).count()
    }

    /// The largest `|numeric - autograd|`.
    pub fn max_error(&self) -> f64 {
        self.probes
            .iter()
            .map(ProbeResult::error)
            .fold(0.0, f64::max)
    }

    /// The probe closest to (or furthest outside) its tolerance.
    pub fn worst(&self) -> Option<&ProbeResult> {
        self.probes
            .iter()
            .reduce(|w, p| if p.excess() > w.excess() { p } else { w })
    }
}

/// A central finite-difference check: step `eps`, acceptance by `tolerance`.
///
/// The loss is evaluated at `x ± eps` for each probed element (the others unchanged) and
/// summed to a scalar (`sum_all`, a no-op on a scalar); autograd's derivative of the same
/// sum comes from one `backward()` at the unperturbed point. All probes are evaluated, and
/// when any is outside the tolerance the check fails with
/// [`TestkitError::GradientMismatch`] naming the worst. Checked tensors must be f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheck {
    /// The step added to and subtracted from each probed element (e.g. `1e-6`).
    pub eps: f64,
    /// When a numeric and an autograd derivative agree.
    pub tolerance: Tolerance,
}

impl GradCheck {
    /// A check with step `eps` and acceptance rule `tolerance`.
    pub fn new(eps: f64, tolerance: Tolerance) -> Self {
        Self { eps, tolerance }
    }

    /// Checks `f` with respect to every element of every input (f64 tensors, named
    /// `input 0`, `input 1`, ... in the report). `f` gets the inputs in order and returns
    /// any tensor; its sum is the checked scalar.
    pub fn inputs(
        &self,
        inputs: &[Tensor],
        f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    ) -> Result<GradReport> {
        for (i, t) in inputs.iter().enumerate() {
            if t.dtype() != DType::F64 {
                return Err(TestkitError::NotF64 {
                    target: format!("input {i}"),
                    dtype: t.dtype(),
                });
            }
        }
        let vars: Vec<Var> = inputs
            .iter()
            .map(Var::from_tensor)
            .collect::<candle_core::Result<_>>()?;
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let targets: Vec<Target<'_>> = vars
            .iter()
            .enumerate()
            .map(|(i, v)| Target::all(format!("input {i}"), v))
            .collect();
        self.vars(&targets, || f(&tensors))
    }

    /// Checks `loss` (which reads the variables itself, e.g. a model's forward) with respect
    /// to the probed elements of each target. Every variable is restored to its value
    /// afterwards, also when the check fails.
    pub fn vars(
        &self,
        targets: &[Target<'_>],
        loss: impl Fn() -> candle_core::Result<Tensor>,
    ) -> Result<GradReport> {
        for t in targets {
            if t.var.dtype() != DType::F64 {
                return Err(TestkitError::NotF64 {
                    target: t.name.clone(),
                    dtype: t.var.dtype(),
                });
            }
        }
        let scalar = || -> candle_core::Result<f64> {
            loss()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()
        };
        let grads = loss()?.sum_all()?.backward()?;
        let mut report = GradReport::default();
        for t in targets {
            let grad = grads
                .get(t.var.as_tensor())
                .ok_or_else(|| TestkitError::NoGradient {
                    target: t.name.clone(),
                })?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let base = t.var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            let shape = t.var.shape().clone();
            let device = t.var.device().clone();
            let indices = t.probes.indices(base.len());
            if let Some(&index) = indices.iter().find(|&&i| i >= base.len()) {
                return Err(TestkitError::ProbeOutOfRange {
                    target: t.name.clone(),
                    index,
                    len: base.len(),
                });
            }
            let mut work = base.clone();
            for index in indices {
                let mut at = |delta: f64| -> candle_core::Result<f64> {
                    work[index] = base[index] + delta;
                    t.var.set(&Tensor::from_slice(&work, &shape, &device)?)?;
                    scalar()
                };
                let plus = at(self.eps);
                let minus = at(-self.eps);
                work[index] = base[index];
                t.var.set(&Tensor::from_slice(&work, &shape, &device)?)?;
                let numeric = (plus? - minus?) / (2.0 * self.eps);
                let autograd = grad[index];
                report.probes.push(ProbeResult {
                    target: t.name.clone(),
                    index,
                    numeric,
                    autograd,
                    allowed: self.tolerance.allowed(numeric, autograd),
                });
            }
        }
        let failed = report.probes.iter().filter(|p| !p.passed()).count();
        if failed > 0 {
            let worst = report.worst().cloned().unwrap_or_else(|| ProbeResult {
                target: String::new(),
                index: 0,
                numeric: f64::NAN,
                autograd: f64::NAN,
                allowed: 0.0,
            });
            return Err(TestkitError::GradientMismatch {
                failed,
                checked: report.checked(),
                worst: Box::new(worst),
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{uniform, weighted_sum};
    use candle_core::Device;

    fn x() -> Tensor {
        uniform(3, &[2, 3, 4], DType::F64, &Device::Cpu).unwrap()
    }

    #[test]
    fn tolerance_forms() {
        let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-15 * b.abs(), "{a} vs {b}");
        close(Tolerance::absolute(1e-8).allowed(100.0, 0.0), 1e-8);
        close(Tolerance::mixed(1e-6, 1e-4).allowed(-2.0, 9.0), 1e-6 + 2e-4);
        close(Tolerance::relative(1e-4, 1e-3).allowed(1e-6, 5.0), 1e-7);
        close(Tolerance::relative(1e-4, 1e-3).allowed(2.0, 5.0), 2e-4);
        let s = Tolerance::mixed(1e-6, 1e-4).symmetric();
        close(s.allowed(-2.0, 9.0), 1e-6 + 9e-4);
    }

    #[test]
    fn probes_select_elements() {
        assert_eq!(Probes::All.indices(3), [0, 1, 2]);
        assert_eq!(Probes::Spread(4).indices(10), [0, 2, 4, 6]);
        assert_eq!(Probes::Spread(40).indices(5), [0, 1, 2, 3, 4]);
        assert_eq!(Probes::At(vec![4, 4, 0]).indices(5), [4, 4, 0]);
    }

    #[test]
    fn a_correct_gradient_passes_and_reports_every_element() {
        let report = GradCheck::new(1e-6, Tolerance::mixed(1e-8, 1e-8))
            .inputs(&[x(), x()], |a| weighted_sum(&(&a[0] * a[1].exp()?)?, 7))
            .unwrap();
        assert_eq!(report.checked(), 48);
        assert_eq!(report.nonzero(), 48);
        assert!(report.max_error() < 1e-8);
        assert!(report.worst().is_some());
    }

    /// `x * detach(x)`: autograd sees `x`, the true derivative is `2x`. The check must fail
    /// and name the worst element.
    #[test]
    fn a_wrong_gradient_fails_naming_the_worst_element() {
        let e = GradCheck::new(1e-6, Tolerance::mixed(1e-6, 1e-6))
            .inputs(&[x()], |a| (&a[0] * a[0].detach())?.sum_all())
            .unwrap_err();
        match &e {
            TestkitError::GradientMismatch {
                failed,
                checked,
                worst,
            } => {
                assert_eq!((*failed, *checked), (24, 24));
                assert_eq!(worst.target, "input 0");
                let xs = x().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let largest = (0..24)
                    .max_by(|&i, &j| xs[i].abs().total_cmp(&xs[j].abs()))
                    .unwrap();
                assert_eq!(worst.index, largest);
                assert!((worst.numeric - 2.0 * xs[largest]).abs() < 1e-6);
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("`input 0` element"), "{e}");
    }

    #[test]
    fn vars_are_restored_and_missing_gradients_are_errors() {
        let v = Var::from_tensor(&x()).unwrap();
        let unused = Var::from_tensor(&x()).unwrap();
        let values = |v: &Var| v.as_tensor().flatten_all()?.to_vec1::<f64>();
        let before = values(&v).unwrap();
        let check = GradCheck::new(1e-6, Tolerance::relative(1e-6, 1e-3));
        let report = check
            .vars(&[Target::spread("v", &v, 5)], || {
                v.as_tensor().sqr()?.sum_all()
            })
            .unwrap();
        assert_eq!(report.checked(), 5);
        assert_eq!(before, values(&v).unwrap());
        let e = check
            .vars(&[Target::all("unused", &unused)], || {
                v.as_tensor().sum_all()
            })
            .unwrap_err();
        assert!(matches!(e, TestkitError::NoGradient { ref target } if target == "unused"));
        let e = check
            .vars(&[Target::at("v", &v, vec![24])], || v.as_tensor().sum_all())
            .unwrap_err();
        assert!(matches!(e, TestkitError::ProbeOutOfRange { index: 24, .. }));
        let f32_input = x().to_dtype(DType::F32).unwrap();
        let e = check.inputs(&[f32_input], |a| a[0].sum_all()).unwrap_err();
        assert!(matches!(e, TestkitError::NotF64 { .. }));
    }
}
