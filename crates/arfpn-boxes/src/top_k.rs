//! [`top_k`]: indices of the largest scores.

/// Indices of the `k` largest values, largest first (equal values: lower index first);
/// NaN counts as the smallest value.
///
/// ```
/// assert_eq!(arfpn_boxes::top_k(&[0.1, 0.9, f32::NAN, 0.9, 0.5], 3), vec![1, 3, 4]);
/// ```
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let key = |i: usize| {
        let v = values[i];
        if v.is_nan() {
            f32::NEG_INFINITY
        } else {
            v
        }
    };
    let cmp = |a: &usize, b: &usize| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_ignores_nan() {
        let v = [0.5, f32::NAN, 2.0, 0.5, -1.0];
        assert_eq!(top_k(&v, 3), vec![2, 0, 3]);
        assert_eq!(top_k(&v, 10), vec![2, 0, 3, 4, 1]);
        assert!(top_k(&v, 0).is_empty());
    }
}
