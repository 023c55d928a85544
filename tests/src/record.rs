//! `run --record`: the first output after every timestep. Each recorded step must equal an
//! independent run stopped at that step (Loihi 2) or add up to the run's spike counts (Speck);
//! a target without timesteps refuses it by kind and message.

use crate::common::{cases, cases_for, compiled, temp_dir, CALIB_SAMPLES};
use nmc::{driver, LoadedArtifact, Options, Target};

fn first_samples(case: &crate::common::Case, n: usize) -> nmc::npy::Array {
    let n = n.min(case.inputs.shape[0]);
    let per = case.inputs.data.len() / case.inputs.shape[0];
    let mut shape = case.inputs.shape.clone();
    shape[0] = n;
    nmc::npy::Array {
        shape,
        data: case.inputs.data[..n * per].to_vec(),
    }
}

#[test]
fn loihi2_records_what_a_run_stopped_at_each_step_outputs() {
    let case = cases().iter().find(|c| c.name == "digits_cnn").unwrap();
    let art = LoadedArtifact::decode(&compiled(case).artifact).unwrap();
    let xs = first_samples(case, 3);
    let t = nmc_loihi2::min_timesteps(&nmc_loihi2::decode(&compiled(case).artifact).unwrap()) + 1;
    for stream in [false, true] {
        let rec = art
            .run_recorded(&xs, Some(t), &Default::default(), stream, &|| {})
            .unwrap();
        let steps = rec.steps.as_ref().expect("recorded");
        let out = rec.outputs.data.len() / 3;
        assert_eq!(steps.shape[..2], [3, t as usize]);
        assert_eq!(steps.data.len(), 3 * t as usize * out);
        for k in 1..=t {
            let stopped = if stream {
                art.run_stream(&xs, Some(k), &Default::default(), &|| {})
            } else {
                art.run(&xs, Some(k))
            }
            .unwrap();
            for s in 0..3 {
                let at = (s * t as usize + (k as usize - 1)) * out;
                // A stream's later frames start from the earlier frames' state, so only the
                // first frame can be compared with a stream stopped early.
                if stream && s > 0 {
                    continue;
                }
                assert_eq!(
                    &steps.data[at..at + out],
                    &stopped.outputs.data[s * out..(s + 1) * out],
                    "stream {stream}, sample {s}, step {k}"
                );
            }
        }
        // The last step is the run's output.
        for s in 0..3 {
            let at = (s * t as usize + t as usize - 1) * out;
            assert_eq!(
                &steps.data[at..at + out],
                &rec.outputs.data[s * out..(s + 1) * out]
            );
        }
    }
}

#[test]
fn speck_records_spikes_per_step_that_add_up_to_the_counts() {
    let case = cases_for("speck")[0];
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let opts = Options::new(Target::lookup("speck").unwrap());
    let c = driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let xs = first_samples(case, 2);
    let t = 6;
    let rec = art
        .run_recorded(&xs, Some(t), &Default::default(), false, &|| {})
        .unwrap();
    let plain = art.run(&xs, Some(t)).unwrap();
    assert_eq!(rec.int_outputs, plain.int_outputs);
    let steps = rec.steps.expect("recorded");
    let out = plain.int_outputs[0].len();
    assert_eq!(steps.shape[..2], [2, t as usize]);
    for s in 0..2 {
        let mut sum = vec![0f32; out];
        for k in 0..t as usize {
            let at = (s * t as usize + k) * out;
            for (acc, v) in sum.iter_mut().zip(&steps.data[at..at + out]) {
                *acc += v;
            }
        }
        let counts: Vec<f32> = plain.int_outputs[s].iter().map(|&c| c as f32).collect();
        assert_eq!(sum, counts, "sample {s}");
    }
}

#[test]
fn record_writes_the_steps_and_a_target_without_timesteps_refuses_it() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let d = temp_dir("record");
    let art = d.join("m.loihi2");
    std::fs::write(&art, &compiled(case).artifact).unwrap();
    let rec = d.join("steps.npy");
    nmc::cli::run_args(vec![
        "nmc",
        "run",
        art.to_str().unwrap(),
        "--input",
        case.dir.join("inputs.npy").to_str().unwrap(),
        "--timesteps",
        "5",
        "--record",
        rec.to_str().unwrap(),
    ])
    .unwrap();
    let steps = nmc::npy::read(&rec).unwrap();
    assert_eq!(steps.shape[..2], [case.inputs.shape[0], 5]);

    let akd = cases_for("akd1000")[0];
    let imported = nmc::onnx::import_file(&akd.model).unwrap();
    let opts = Options::new(Target::lookup("akd1000").unwrap());
    let c = driver::compile_graph(imported.graph, &akd.samples(CALIB_SAMPLES), &opts, 0).unwrap();
    let a = LoadedArtifact::decode(&c.artifact).unwrap();
    let err = a
        .run_recorded(
            &first_samples(akd, 1),
            None,
            &Default::default(),
            false,
            &|| {},
        )
        .unwrap_err();
    assert!(
        matches!(err, nmc_backend::BackendError::Usage(_)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "--record: akd1000 runs each input in one pass, without timesteps to record"
    );
}
