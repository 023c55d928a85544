//! The artifact format: round trip, determinism, and rejection of damaged or hostile bytes.

mod common;

use common::*;
use nmc_ir::{Constant, CoreLoc, CoreSlice, Graph, Layer, Mapping, Op, Synapse};
use nmc_loihi2::artifact::{GroupKind, Weights};
use nmc_loihi2::{decode, encode, loihi2, lower, Artifact, ArtifactError, EmuError, Emulator};

/// x[16] → fc1 (8×16, dense storage) → fc2 (4×8, 3 non-zeros: CSR) → y, fc1 split over 2 cores.
fn sample() -> Artifact {
    let mut g = Graph::new("sample");
    let (_, q) = quantized_input(&mut g, vec![16], "x");
    let w1 = (0..128).map(|i| ((i * 37) % 255 - 127) / 2 * 2).collect();
    let w1 = g.consts.add(Constant::i32(vec![8, 16], w1));
    let mut w2 = vec![0; 32];
    w2[3] = 10;
    w2[9] = -20;
    w2[30] = 4;
    let w2 = g.consts.add(Constant::i32(vec![4, 8], w2));
    let mut rng = Rng(3);
    let layer = |w, rng: &mut Rng| {
        let (neuron, quant) = quant(rng, 1, None);
        Op::Layer(Layer {
            synapses: vec![Synapse::Dense { weight: w }],
            bias: None,
            neuron,
            pool: None,
            quant: Some(quant),
        })
    };
    let op1 = layer(w1, &mut rng);
    let fc1 = add(&mut g, op1, vec![q], "fc1");
    let op2 = layer(w2, &mut rng);
    let fc2 = add(&mut g, op2, vec![fc1], "fc2");
    dequantize(&mut g, fc2, "y");
    let m = Mapping {
        layers: [
            (
                fc1,
                vec![CoreSlice::channels(0, 0, 5), CoreSlice::channels(1, 5, 8)],
            ),
            (fc2, vec![CoreSlice::channels(1, 0, 4)]),
        ]
        .into_iter()
        .collect(),
        placement: vec![
            CoreLoc {
                chip: 0,
                x: 0,
                y: 0,
            },
            CoreLoc {
                chip: 0,
                x: 1,
                y: 0,
            },
        ],
    };
    lower(&g, &m, 42, &loihi2()).unwrap()
}

/// Encodes `a`, decodes it, and returns the corruption message (which must name `who`).
fn corrupt_msg(a: &Artifact, who: &str) -> String {
    let err = decode(&encode(a)).unwrap_err();
    let ArtifactError::Corrupt(msg) = &err else {
        panic!("expected a corrupt-artifact error, got {err:?}");
    };
    assert!(msg.contains(who), "message {msg:?} should name {who}");
    assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
    // The emulator refuses the same artifact built in memory.
    assert!(matches!(
        Emulator::new(a, &loihi2()),
        Err(EmuError::Artifact(ArtifactError::Corrupt(_)))
    ));
    msg.clone()
}

#[test]
fn round_trip_is_exact_and_deterministic() {
    let a = sample();
    let bytes = encode(&a);
    assert_eq!(encode(&sample()), bytes);
    let b = decode(&bytes).unwrap();
    assert_eq!(b, a);
    assert_eq!(b.header.as_ref().unwrap().source_hash, 42);
    assert!(matches!(
        a.populations[1].groups[0].weights,
        Some(Weights::Csr(_))
    ));
    assert!(matches!(
        a.populations[0].groups[0].weights,
        Some(Weights::Dense(_))
    ));
}

#[test]
fn rejects_truncated_foreign_and_other_version_bytes() {
    let a = sample();
    let bytes = encode(&a);
    for cut in [bytes.len() / 2, bytes.len() - 1] {
        let e = decode(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(&e, ArtifactError::Corrupt(m) if m.contains("truncated")),
            "cut at {cut}: {e:?}"
        );
    }
    assert_eq!(
        decode(&bytes[..5]),
        Err(ArtifactError::NotAnArtifact { target: "loihi2" })
    );
    assert_eq!(
        decode(b"\x89PNG\r\n\x1a\n"),
        Err(ArtifactError::NotAnArtifact { target: "loihi2" })
    );

    let mut b = a.clone();
    b.header.as_mut().unwrap().magic = b"NMCAKART".to_vec();
    assert_eq!(
        decode(&encode(&b)),
        Err(ArtifactError::NotAnArtifact { target: "loihi2" })
    );

    let mut b = a.clone();
    b.header.as_mut().unwrap().format_version = 7;
    let version = ArtifactError::Version {
        found: 7,
        supported: nmc_loihi2::artifact::ENVELOPE.version,
    };
    let expected = Err(version.clone());
    let mut bytes7 = encode(&b);
    assert_eq!(decode(&bytes7), expected);
    // A future version whose body this build cannot parse still reports the version.
    bytes7.extend_from_slice(&[0xff, 0xff, 0xff]);
    assert_eq!(decode(&bytes7), expected);
    assert_eq!(
        version.to_string(),
        "artifact format version 7 is not supported (this build reads version 2)"
    );

    let mut b = a;
    b.header.as_mut().unwrap().target = "akd1000".into();
    assert!(matches!(
        decode(&encode(&b)),
        Err(ArtifactError::WrongTarget { .. })
    ));
}

#[test]
fn rejects_structural_damage_naming_the_population() {
    let a = sample();

    let mut b = a.clone();
    b.populations[1].slices[0].core = 9;
    let m = corrupt_msg(&b, "population 1 \"fc2\"");
    assert!(m.contains("core 9"), "{m}");

    let mut b = a.clone();
    b.populations[0].slices[1].start = 6;
    corrupt_msg(&b, "population 0 \"fc1\"");

    let mut b = a.clone();
    b.populations[0].slices.pop();
    let m = corrupt_msg(&b, "population 0 \"fc1\"");
    assert!(m.contains("[0, 5) of 8"), "{m}");

    let mut b = a.clone();
    let Some(Weights::Csr(c)) = &mut b.populations[1].groups[0].weights else {
        unreachable!()
    };
    c.indices[0] = 8;
    let m = corrupt_msg(&b, "population 1 \"fc2\", group 0");
    assert!(m.contains("index 8 out of range"), "{m}");

    let mut b = a.clone();
    let Some(Weights::Csr(c)) = &mut b.populations[1].groups[0].weights else {
        unreachable!()
    };
    c.indptr[2] = 40;
    corrupt_msg(&b, "population 1 \"fc2\"");

    let mut b = a.clone();
    let Some(Weights::Dense(d)) = &mut b.populations[0].groups[0].weights else {
        unreachable!()
    };
    d.values.pop();
    let m = corrupt_msg(&b, "population 0 \"fc1\", group 0");
    assert!(m.contains("127 weights stored"), "{m}");

    let mut b = a.clone();
    b.populations[0].groups[0].sources[0].index = 1;
    corrupt_msg(&b, "population 0 \"fc1\"");

    // A population may only read earlier ones: no cycles.
    let mut b = a.clone();
    b.populations[0].groups[0].sources[0].kind = 1;
    b.populations[0].groups[0].sources[0].index = 1;
    corrupt_msg(&b, "population 0 \"fc1\"");

    let mut b = a.clone();
    if let Some(GroupKind::Dense(d)) = &mut b.populations[1].groups[0].kind {
        d.in_features = 9;
    }
    corrupt_msg(&b, "population 1 \"fc2\"");

    let mut b = a.clone();
    b.populations[1].bias = vec![1, 2];
    corrupt_msg(&b, "population 1 \"fc2\"");

    let mut b = a.clone();
    b.populations[1].pre_shape = vec![1 << 20, 1 << 20];
    corrupt_msg(&b, "population 1 \"fc2\"");

    let mut b = a.clone();
    b.outputs[0].population = 5;
    corrupt_msg(&b, "output 0 \"y\"");

    let mut b = a;
    b.cores[1].chip = 3;
    corrupt_msg(&b, "core 1");
}

#[test]
fn random_byte_damage_never_panics() {
    let bytes = encode(&sample());
    let mut rng = Rng(11);
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..rng.usize(1, 4) {
            let i = rng.usize(0, b.len() - 1);
            b[i] = rng.next_u64() as u8;
        }
        if let Ok(a) = decode(&b) {
            // Whatever still decodes is safe to emulate and list.
            let _ = nmc_loihi2::listing(&a);
            if let Ok(mut emu) = Emulator::new(&a, &loihi2()) {
                let inputs: Vec<Vec<i64>> = a
                    .inputs
                    .iter()
                    .map(|i| {
                        vec![
                            i.min.max(0).min(i.max) as i64;
                            i.shape.iter().product::<u32>() as usize
                        ]
                    })
                    .collect();
                let _ = emu.run(&inputs, nmc_loihi2::min_timesteps(&a));
            }
        }
    }
}

/// Sets one randomly chosen numeric field of `a` to an interesting value.
fn mutate(a: &mut Artifact, rng: &mut Rng) {
    const VALUES: [u32; 10] = [0, 1, 2, 3, 5, 8, 64, 255, 1 << 20, u32::MAX];
    let v = VALUES[rng.usize(0, VALUES.len() - 1)];
    let np = a.populations.len();
    let p = &mut a.populations[rng.usize(0, np - 1)];
    let ng = p.groups.len();
    let g = &mut p.groups[rng.usize(0, ng - 1)];
    let pick = |rng: &mut Rng, x: &mut Vec<u32>| {
        if !x.is_empty() {
            let i = rng.usize(0, x.len() - 1);
            x[i] = v;
        }
    };
    match rng.usize(0, 19) {
        0 => pick(rng, &mut p.shape),
        1 => pick(rng, &mut p.pre_shape),
        2 => p.state_bits = v,
        3 => p.act_shift = v,
        4 => p.act_min = v as i32,
        5 => {
            let n = p.slices.len();
            let s = &mut p.slices[rng.usize(0, n - 1)];
            match rng.usize(0, 2) {
                0 => s.core = v,
                1 => s.start = v,
                _ => s.end = v,
            }
        }
        6 => g.weight_exp = v as i32,
        7 => {
            let n = g.sources.len();
            let s = &mut g.sources[rng.usize(0, n - 1)];
            match rng.usize(0, 2) {
                0 => s.kind = v as i32,
                1 => s.index = v,
                _ => s.length = v,
            }
        }
        8..=11 => match &mut g.kind {
            Some(GroupKind::Dense(d)) => {
                if rng.chance(0.5) {
                    d.out_features = v
                } else {
                    d.in_features = v
                }
            }
            Some(GroupKind::Conv(c)) => match rng.usize(0, 6) {
                0 => pick(rng, &mut c.in_shape),
                1 => c.out_channels = v,
                2 => pick(rng, &mut c.kernel),
                3 => pick(rng, &mut c.strides),
                4 => pick(rng, &mut c.pads),
                5 => pick(rng, &mut c.dilations),
                _ => c.groups = v,
            },
            None => {}
        },
        12 | 13 => match &mut g.weights {
            Some(Weights::Csr(c)) => {
                if rng.chance(0.5) {
                    pick(rng, &mut c.indptr)
                } else {
                    pick(rng, &mut c.indices)
                }
            }
            Some(Weights::Dense(d)) => d
                .values
                .truncate(d.values.len().saturating_sub(v as usize % 3)),
            None => {}
        },
        14 | 15 => {
            if let Some(pool) = &mut p.pool {
                match rng.usize(0, 3) {
                    0 => pick(rng, &mut pool.kernel),
                    1 => pick(rng, &mut pool.strides),
                    2 => pick(rng, &mut pool.pads),
                    _ => pool.kind = v as i32,
                }
            }
        }
        16 => p.bias.truncate(v as usize % 3),
        17 => {
            let n = a.cores.len();
            let c = &mut a.cores[rng.usize(0, n - 1)];
            c.x = v;
        }
        18 => {
            let i = &mut a.inputs[0];
            pick(rng, &mut i.shape);
        }
        _ => a.outputs[0].population = v,
    }
}

#[test]
fn structural_mutations_never_panic_the_decoder_or_emulator() {
    let spec = loihi2().with_chips(2);
    let mut rng = Rng(0xdead_beef);
    let mut accepted = 0;
    for case in 0..20 {
        let g = random_graph(&mut rng);
        let m = random_mapping(&mut rng, &g, 2);
        let base = lower(&g, &m, case, &spec).unwrap();
        for _ in 0..100 {
            let mut a = base.clone();
            for _ in 0..rng.usize(1, 2) {
                mutate(&mut a, &mut rng);
            }
            let _ = nmc_loihi2::min_timesteps(&a);
            let decoded = decode(&encode(&a));
            let emu = Emulator::new(&a, &spec);
            assert_eq!(
                decoded.is_ok(),
                emu.is_ok() || !matches!(emu, Err(EmuError::Artifact(_)))
            );
            if let (Ok(a), Ok(mut emu)) = (decoded, emu) {
                accepted += 1;
                let _ = nmc_loihi2::listing(&a);
                let inputs: Vec<Vec<i64>> = a
                    .inputs
                    .iter()
                    .map(|i| vec![1; i.shape.iter().product::<u32>() as usize])
                    .collect();
                emu.run(&inputs, nmc_loihi2::min_timesteps(&a) + 1).unwrap();
            }
        }
    }
    assert!(accepted > 0);
}
