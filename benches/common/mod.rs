//! Test data shared by the benches and the examples that measure: bytes the
//! disk cannot compress, since a disk that compresses or skips runs of one
//! byte would flatter every figure.
#![allow(dead_code)] // Each bench or example uses part of it.

/// The xorshift64 step: cheap, and no two neighbouring bytes repeat a pattern.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `len` incompressible bytes.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len).map(|_| (next(&mut state) >> 24) as u8).collect()
}

/// A JSON string of `len` bytes, quotes included, of letters and digits
/// drawn from `seed`.
pub fn json_string(seed: u64, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = Vec::with_capacity(len);
    text.push(b'"');
    while text.len() < len - 1 {
        text.push(ALPHABET[(next(&mut state) >> 58) as usize]);
    }
    text.push(b'"');
    text
}
