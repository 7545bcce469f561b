// Floor division and modulo (DESIGN.md): the quotient rounds towards negative
// infinity and the remainder has the sign of the divisor.
fn fdiv(a: i32, b: i32) -> i32 {
    let t = a / b;
    return select(t, t - 1, (a % b != 0) && ((a < 0) != (b < 0)));
}

fn fmod(a: i32, b: i32) -> i32 {
    let r = a % b;
    return select(r, r + b, (r != 0) && ((r < 0) != (b < 0)));
}

// heads 0..4: causal & (sink(64) | window(1024))
fn mask_0(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && ((k < 64) || (abs(q - k) < 1024)));
}

fn mask_allows(h: i32, q: i32, k: i32) -> bool {
    return mask_0(h, q, k);
}
