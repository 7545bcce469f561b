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

// heads 0..2: causal & groups(64)
fn mask_0(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && (fdiv(q, 64) == fdiv(k, 64)));
}

// heads 2..4: causal & groups(64, 32)
fn mask_1(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && (fdiv(q - 32, 64) == fdiv(k - 32, 64)));
}

fn mask_allows(h: i32, q: i32, k: i32) -> bool {
    if (h < 2) {
        return mask_0(h, q, k);
    }
    return mask_1(h, q, k);
}
