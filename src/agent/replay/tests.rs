//! The replay buffer: overwriting, bytes, saved state, shared frames.

use super::*;

#[test]
fn a_full_buffer_overwrites_the_oldest_transition() {
    let mut buffer = ReplayBuffer::new(3, 1, 1);
    for i in 0..5 {
        buffer.push(&[i as f32], &[0.0], i as f32, &[i as f32 + 1.0], false);
    }
    assert_eq!(buffer.len(), 3);
    let mut rewards = buffer.rewards.clone();
    rewards.sort_by(f32::total_cmp);
    assert_eq!(rewards, [2.0, 3.0, 4.0]);
    // A huge capacity allocates nothing up front.
    assert!(matches!(ReplayBuffer::new(usize::MAX / 64, 4, 1).obs, Frames::Floats(v) if v.capacity() == 0));
}

/// Bytes hold whole numbers from 0 to 255 exactly; the first other value turns the storage
/// to `f32`, keeping what was there; sampled rows, saved state and the ring are the same
/// either way.
#[test]
fn observations_of_bytes_are_kept_as_bytes_and_read_back_exactly() {
    let rows = [[0.0, 255.0], [17.0, 3.0], [1.0, 0.0], [2.0, 254.0]];
    let (mut bytes, mut floats) = (ReplayBuffer::for_bytes(3, 2, 1), ReplayBuffer::new(3, 2, 1));
    for (i, row) in rows.iter().enumerate() {
        for b in [&mut bytes, &mut floats] {
            b.push(row, &[i as f32], i as f32, &rows[(i + 1) % 4], false);
        }
    }
    assert!(bytes.obs.is_bytes() && bytes.next_obs.is_bytes());
    let sample = |b: &ReplayBuffer| {
        let r = b.sample_rows(8, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1));
        (r.obs, r.next_obs, r.actions)
    };
    assert_eq!(sample(&bytes), sample(&floats));
    assert_eq!(bytes.ring().0, floats.ring().0);
    bytes.push(&[0.5, 1.0], &[9.0], 9.0, &[300.0, 2.0], false);
    floats.push(&[0.5, 1.0], &[9.0], 9.0, &[300.0, 2.0], false);
    assert!(!bytes.obs.is_bytes() && !bytes.next_obs.is_bytes(), "a half and a 300 are no bytes");
    assert_eq!(sample(&bytes), sample(&floats));
    let (ring, len, pos) = floats.ring();
    let owned: [Vec<f32>; 5] = ring.map(|c| c.into_owned());
    let mut restored = ReplayBuffer::for_bytes(3, 2, 1);
    restored.set_ring(owned, len, pos).unwrap();
    assert_eq!(sample(&restored), sample(&floats));
}

/// A replay sharing frames holds the same transitions as one storing every next observation:
/// vector steps of 3 environments (episodes ending at random, a final observation each time,
/// some next rows deliberately unlike the next step's), a ring of 10 that wraps many times,
/// single pushes between (transferred transitions), a restore from the ring midway; samples,
/// saved state and ring equal throughout, in less memory.
#[test]
fn sharing_frames_keeps_every_transition_exactly() {
    use crate::env::Obs;
    use rand::SeedableRng;
    let (n, d) = (3, 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let (mut plain, mut shared) =
        (ReplayBuffer::for_bytes(10, d, 1), ReplayBuffer::for_bytes(10, d, 1).sharing_frames(n));
    let mut obs: Vec<f32> = (0..n * d).map(|_| rng.random_range(0..256) as f32).collect();
    let sample = |b: &ReplayBuffer, seed| {
        let r = b.sample_rows(16, &mut rand::rngs::StdRng::seed_from_u64(seed));
        (r.obs, r.actions, r.rewards, r.next_obs, r.dones)
    };
    for t in 0..60 {
        let mut next: Vec<f32> = (0..n * d).map(|_| rng.random_range(0..256) as f32).collect();
        let ended: Vec<bool> = (0..n).map(|_| rng.random_bool(0.2)).collect();
        let final_obs: Vec<Option<Obs>> =
            ended.iter().map(|&e| e.then(|| Obs::from_slice(&[rng.random_range(0..256) as f32, 7.0]))).collect();
        let (rewards, actions) = (vec![t as f64; n], vec![t as f32; n]);
        let step = VecStep {
            obs: &next,
            rewards: &rewards,
            terminated: &ended,
            truncated: &vec![false; n],
            final_obs: &final_obs,
            episodes: &[],
        };
        plain.push_step(&obs, &actions, &step);
        shared.push_step(&obs, &actions, &step);
        if t % 13 == 5 {
            // The loop acts on other rows than the step gave (a restored observation).
            next[0] += 1.0;
        }
        if t % 17 == 9 {
            for b in [&mut plain, &mut shared] {
                b.push(&[1.0, 2.0], &[9.0], 0.5, &[3.0, 4.0], true);
            }
        }
        if t == 31 {
            let (ring, len, pos) = shared.ring();
            let owned: [Vec<f32>; 5] = ring.map(|c| c.into_owned());
            shared = ReplayBuffer::for_bytes(10, d, 1).sharing_frames(n);
            shared.set_ring(owned, len, pos).unwrap();
        }
        obs = next;
        assert_eq!(sample(&plain, t), sample(&shared, t), "step {t}");
        assert_eq!(plain.ring().0, shared.ring().0, "step {t}");
        let state = |b: &ReplayBuffer| {
            b.state().into_iter().map(|(k, v)| (k, Vec::<f32>::try_from(v.view([-1])).unwrap())).collect::<Vec<_>>()
        };
        assert_eq!(state(&plain), state(&shared), "step {t}");
    }
    // Memory, with images of 400 bytes, 4 environments and an episode ending every 50 steps of
    // each: about half.
    let (n, d) = (4, 400);
    let (mut plain, mut shared) =
        (ReplayBuffer::for_bytes(200, d, 1), ReplayBuffer::for_bytes(200, d, 1).sharing_frames(n));
    let rows = |t: usize| -> Vec<f32> { (0..n * d).map(|k| ((t * 31 + k) % 256) as f32).collect() };
    for t in 0..100 {
        let ended: Vec<bool> = (0..n).map(|i| (t + 13 * i) % 50 == 0).collect();
        let final_obs: Vec<Option<Obs>> =
            ended.iter().map(|&e| e.then(|| Obs::from_slice(&rows(t + 1000)[..d]))).collect();
        let next = rows(t + 1);
        let step = VecStep {
            obs: &next,
            rewards: &[0.0; 4],
            terminated: &ended,
            truncated: &[false; 4],
            final_obs: &final_obs,
            episodes: &[],
        };
        plain.push_step(&rows(t), &[0.0; 4], &step);
        shared.push_step(&rows(t), &[0.0; 4], &step);
    }
    let (a, b) = (shared.memory_bytes() as f64, plain.memory_bytes() as f64);
    println!("a replay of 200 images of 400 bytes: {a} bytes sharing frames, {b} storing them twice");
    assert!(a < 0.6 * b, "{a} vs {b} bytes");
    // Too small a ring for two vector steps stores every next observation.
    assert!(ReplayBuffer::new(5, 1, 1).sharing_frames(3).shared.is_none());
}

#[test]
fn state_round_trips_oldest_first() {
    let mut buffer = ReplayBuffer::new(3, 1, 1);
    for i in 0..5 {
        buffer.push(&[i as f32], &[0.5], i as f32, &[i as f32 + 1.0], i == 4);
    }
    let state: std::collections::HashMap<String, Tensor> = buffer.state().into_iter().collect();
    assert_eq!(Vec::<f32>::try_from(&state["replay.rewards"]).unwrap(), [2.0, 3.0, 4.0]);
    let mut copy = ReplayBuffer::new(2, 1, 1);
    let n = copy.extend_from_state(&mut |n| state.get(n).map(Tensor::shallow_clone)).unwrap();
    assert_eq!((n, copy.len()), (3, 2));
    let mut rewards = copy.rewards.clone();
    rewards.sort_by(f32::total_cmp);
    assert_eq!(rewards, [3.0, 4.0], "the newest transitions stay");
    assert_eq!(copy.dones.iter().sum::<f32>(), 1.0);
}
