#![allow(unreachable_pub)]
//! Seeded mutations of valid inputs, the kinds that broke arrow's stream reader: flipped
//! bits, length fields set to huge or negative values, truncations, bytes spliced in, cut out
//! or duplicated. The seed alone decides every mutation, so a failure names its case.

use inlet_core::rng::SplitMix64;

/// Values written over length fields: the largest positive i32, -1 (the continuation marker),
/// the most negative i32, and lengths near 2^51 like the one that aborted the server.
const HUGE_WORDS: [u32; 4] = [0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000, 0x4000_0000];
const HUGE_LONGS: [u64; 4] = [i64::MAX as u64, 2_251_799_813_686_608, u64::MAX, 1 << 40];

/// `input` with one to three mutations applied.
pub fn mutate(input: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..rng.between(1, 3) {
        mutate_once(&mut bytes, rng);
    }
    bytes
}

fn mutate_once(bytes: &mut Vec<u8>, rng: &mut SplitMix64) {
    let len = bytes.len() as u64;
    if len == 0 {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        return;
    }
    let at = rng.between(0, len - 1) as usize;
    match rng.between(0, 6) {
        0 => {
            for _ in 0..rng.between(1, 8) {
                let at = rng.between(0, len - 1) as usize;
                bytes[at] ^= 1 << rng.between(0, 7);
            }
        }
        1 => {
            let at = at & !3;
            if at + 4 <= bytes.len() {
                let word = match rng.between(0, 4) {
                    4 => rng.next_u64() as u32,
                    i => HUGE_WORDS[i as usize],
                };
                bytes[at..at + 4].copy_from_slice(&word.to_le_bytes());
            }
        }
        2 => {
            let at = at & !7;
            if at + 8 <= bytes.len() {
                let long = match rng.between(0, 4) {
                    4 => rng.next_u64(),
                    i => HUGE_LONGS[i as usize],
                };
                bytes[at..at + 8].copy_from_slice(&long.to_le_bytes());
            }
        }
        3 => bytes.truncate(at),
        4 => {
            let count = rng.between(1, 64) as usize;
            let spliced: Vec<u8> = (0..count).map(|_| rng.next_u64() as u8).collect();
            bytes.splice(at..at, spliced);
        }
        5 => {
            let end = (at + rng.between(1, 64) as usize).min(bytes.len());
            bytes.drain(at..end);
        }
        _ => {
            let end = (at + rng.between(1, 256) as usize).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            let to = rng.between(0, bytes.len() as u64) as usize;
            bytes.splice(to..to, copy);
        }
    }
}
