//! Which items `--limit N` takes from a labelled data set, and how a report
//! says so. An IDX file keeps its file order (MNIST's test split is already
//! shuffled, and fixtures were computed on its first digits); an image
//! folder is stored class after class, so its first N files would cover only
//! the first classes: it takes the first N of a class-interleaved order
//! instead.

/// The first `n` items of the class-interleaved order of classes holding
/// `sizes[c]` items each, as `(class, position within the class)`.
///
/// The order depends on the sizes alone (no seed) and keeps every prefix in
/// proportion: after `t` items, class `c` has `x_c` of them with
/// `|x_c − t·sizes[c]/M| < 1` (`M` the total), so any limit takes each class
/// within one item of its share, and a larger limit takes a superset. Items
/// of a class are taken in their stored order. Equal classes alternate in
/// class order (`a, b, c, a, b, c, …`).
///
/// It is the earliest-deadline-first schedule of Tijdeman's chairman
/// assignment problem: class `c`'s `j`-th item (1-based) may go at step `t`
/// (1-based) once `(j − 1)·M < t·sizes[c]` (taking it keeps `x_c` less than
/// one above its share), and among those, the one whose share reaches `j`
/// first (the least `j·M/sizes[c]`) goes, the lower class on ties.
pub fn stratified_order(sizes: &[usize], n: usize) -> Vec<(usize, usize)> {
    let total: u128 = sizes.iter().map(|&s| s as u128).sum();
    let n = n.min(total as usize);
    let mut taken = vec![0usize; sizes.len()];
    let mut order = Vec::with_capacity(n);
    for t in 1..=n as u128 {
        // (class, its next item's 1-based number j) with the least j/size.
        let mut best: Option<(usize, u128)> = None;
        for (c, &size) in sizes.iter().enumerate() {
            let (j, size) = (taken[c] as u128 + 1, size as u128);
            if j > size || (j - 1) * total >= t * size {
                continue;
            }
            let earlier = match best {
                None => true,
                // j / size < bj / bsize, in integers.
                Some((b, bj)) => j * (sizes[b] as u128) < bj * size,
            };
            if earlier {
                best = Some((c, j));
            }
        }
        // Some class is always below its share (the shares sum to t and the
        // counts to t − 1), and that class may go.
        let (c, _) = best.expect("a class below its share");
        order.push((c, taken[c]));
        taken[c] += 1;
    }
    order
}

/// The report's description of an image folder's items: `all M` or
/// `class-stratified N of M`.
pub fn describe_stratified(taken: usize, total: usize) -> String {
    if taken >= total {
        format!("all {total}")
    } else {
        format!("class-stratified {taken} of {total}")
    }
}

/// The report's description of an IDX file's items: `all M in file order` or
/// `first N of M in file order`.
pub fn describe_file_order(taken: usize, total: usize) -> String {
    if taken >= total {
        format!("all {total} in file order")
    } else {
        format!("first {taken} of {total} in file order")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(sizes: &[usize], n: usize) -> Vec<usize> {
        stratified_order(sizes, n)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    #[test]
    fn equal_classes_alternate_in_class_order() {
        assert_eq!(
            classes(&[3, 3, 3, 3], 12),
            [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]
        );
        assert_eq!(classes(&[2, 2], 3), [0, 1, 0]);
    }

    #[test]
    fn items_of_a_class_keep_their_order_and_each_is_taken_once() {
        let order = stratified_order(&[4, 1, 3], 8);
        let mut seen = vec![Vec::new(); 3];
        for (c, i) in order {
            seen[c].push(i);
        }
        assert_eq!(seen, [vec![0, 1, 2, 3], vec![0], vec![0, 1, 2]]);
    }

    #[test]
    fn limits_beyond_the_total_and_empty_classes() {
        assert_eq!(stratified_order(&[2, 0, 1], 10).len(), 3);
        assert!(classes(&[2, 0, 1], 3).iter().all(|&c| c != 1));
        assert!(stratified_order(&[], 5).is_empty());
        assert!(stratified_order(&[3], 0).is_empty());
    }

    /// The bug this pins: a 4-class folder limited to half its size took the
    /// first two classes only.
    #[test]
    fn half_of_a_four_class_folder_holds_every_class_in_proportion() {
        let sizes = [50, 50, 50, 50];
        let mut counts = [0; 4];
        for c in classes(&sizes, 100) {
            counts[c] += 1;
        }
        assert_eq!(counts, [25; 4]);
        let mut counts = [0; 3];
        for c in classes(&[60, 30, 10], 50) {
            counts[c] += 1;
        }
        assert_eq!(counts, [30, 15, 5]);
    }

    #[test]
    fn every_prefix_is_within_one_item_of_each_share() {
        // Deterministic pseudo-random sizes, small and large, up to 9 classes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % m) as usize
        };
        for _ in 0..400 {
            let k = 1 + next(9);
            let sizes: Vec<usize> = (0..k)
                .map(|_| match next(3) {
                    0 => next(6),
                    1 => 1 + next(60),
                    _ => 1 + next(400),
                })
                .collect();
            let total: usize = sizes.iter().sum();
            let order = classes(&sizes, total);
            assert_eq!(order.len(), total);
            let mut counts = vec![0usize; k];
            for (t, c) in order.into_iter().enumerate() {
                counts[c] += 1;
                for (x, &size) in counts.iter().zip(&sizes) {
                    // |x − (t+1)·size/total| < 1, in integers.
                    let lhs = (*x * total).abs_diff((t + 1) * size);
                    assert!(lhs < total, "sizes {sizes:?}, prefix {}", t + 1);
                }
            }
            assert_eq!(counts, sizes);
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe_stratified(10, 10), "all 10");
        assert_eq!(describe_stratified(4, 10), "class-stratified 4 of 10");
        assert_eq!(describe_file_order(1000, 1000), "all 1000 in file order");
        assert_eq!(
            describe_file_order(5, 1000),
            "first 5 of 1000 in file order"
        );
    }
}
