//! The attacks of issue #12 that one member (or whoever holds its machine) plays against the
//! node process rather than inside the consensus protocol, each run against the real node code:
//! the `lookup` network as the node configures it (on the deterministic runtime), the keystore,
//! the configuration rules and the peer gate in front of the TPM. `bulwark sim --scenario NAME`
//! runs them beside the committee scenarios; each report says what the attacker tried, what it
//! achieved (nothing, when the promise held) and what refused it.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_api::wire::{PeerAuth, PeerOp};
use bulwark_node::node::config::{AdmissionConfig, AdmissionMode, NodeConfig, Peer};
use bulwark_node::node::keystore::{self, Binding, Keystore, KeystoreError, Migration};
use bulwark_node::node::p2p::{config, P2pSettings};
use bulwark_node::node::peer_gate::{PeerGate, PEER_OPS_BURST, PEER_OPS_PER_SECOND};
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{
    Address, AddressableManager as _, Blocker as _, Receiver as _, Recipients, Sender as _,
};
use commonware_runtime::Supervisor as _;
use commonware_runtime::{deterministic, Clock as _, IoBuf, Quota, Runner as _, Spawner as _};
use commonware_utils::ordered::Map;
use commonware_utils::{NZUsize, NZU32};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The member-level attack scenarios, with what each does.
pub const MEMBER_SCENARIOS: &[(&str, &str)] = &[
    (
        "cut-off-lapse",
        "member 1 is cut off (appraisal lapsed, then contraindicated, then blocked for misbehaviour) and keeps sending; it must stay out through admission changes until readmitted",
    ),
    (
        "keystore-swap",
        "whoever can write member 0's data directory plants a plain key, another node's sealed key, a key sealed for another committee, and loosens a secret's mode",
    ),
    (
        "dev-paths-in-production",
        "a production member is configured with every development path, and handed development evidence by a peer",
    ),
    (
        "forged-launch",
        "the launcher measured a tampered binary into member n-1's TPM; it tries every reset of the launch PCR (localities 0-4) and every sequence of up to three honest extensions, then unseals and answers every member's challenge with forged launch logs",
    ),
    (
        "tee-admission",
        "every member replays a recorded SEV-SNP or TDX sample, appraised through the production admission at the samples' date; member n-1 flips one seeded byte of its sample, and an honest SEV-SNP sample is sent with an AMD CRL the ARK did not sign (TEST-ONLY report-data switch: needs the recorded-samples feature, which only the test command enables)",
    ),
    (
        "tpm-ops-flood",
        "a stranger and a member flood member 0's attest, attest-key and activate endpoint, and forge requests in another member's name",
    ),
    (
        "double-withdrawal",
        "the vault's Byzantine coordinator asks every member to sign one authorized taproot withdrawal three times: once, again with fresh nonces (a retry: signed again for the same txid, which pays once), and with another transaction for the same withdrawal (refused by every member); no second payout",
    ),
    (
        "forged-withdrawal",
        "the vault's Byzantine coordinator asks for a withdrawal no block authorized, another destination, another amount, change to itself, a burnt fee, another withdrawal's sighash, and a transaction locked far into the future: no share leaves, every refusal but the unauthorized id (a member may lag) is evidence, and the honest request still signs",
    ),
    (
        "custody-member-removed",
        "member n-1 leaves the vault: the others refresh their shares; its old share with new ones signs nothing, no member signs next to it, and the new sharing signs to the same address; a replacement is repaired by t of them (a helper lying about a delta leaves it with nothing) and signs with t - 1 of them",
    ),
];

/// What one member-level attack achieved.
#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    /// The scenario's name.
    pub scenario: String,
    /// What the attacker does.
    pub attack: String,
    /// Its seed.
    pub seed: u64,
    /// Committee size.
    pub nodes: usize,
    /// The promise held: the attacker achieved nothing.
    pub held: bool,
    /// Not a committee run: no blocks are finalized here (always null).
    pub height_progress: Option<u64>,
    /// Appraisals that refused an honest member (counted where a scenario appraises; else 0).
    pub false_evidence: usize,
    /// What the attacker achieved (empty when the promise held).
    pub achieved: Vec<String>,
    /// Each attempt and what refused it.
    pub refused: Vec<String>,
    /// The command that replays this run.
    pub replay: String,
}

/// Runs the member-level scenario `name` at `seed` with `n` members, or `None` for an unknown
/// name; `Some(Err(why))` when this build or machine cannot run it.
pub fn run_member_attack(name: &str, seed: u64, n: usize) -> Option<Result<MemberReport, String>> {
    let none = |(achieved, refused): Outcome| (achieved, refused, 0);
    let (achieved, refused, false_evidence) = match name {
        #[cfg(feature = "recorded-samples")]
        "tee-admission" => match crate::tee_admission::tee_admission(seed, n) {
            Ok(outcome) => outcome,
            Err(why) => return Some(Err(why)),
        },
        #[cfg(not(feature = "recorded-samples"))]
        "tee-admission" => {
            return Some(Err("tee-admission replays recorded SEV-SNP/TDX samples through a TEST-ONLY verifier switch that this build does not have (production builds never do); run it with `cargo run --features bulwark-sim/recorded-samples -- sim --scenario tee-admission`, as the test command does".into()))
        }
        "cut-off-lapse" => none(cut_off_lapse(seed, n)),
        "keystore-swap" => none(keystore_swap(seed, n)),
        "dev-paths-in-production" => none(dev_paths_in_production(n)),
        "forged-launch" => crate::launch_forgery::forged_launch(seed, n),
        "tpm-ops-flood" => none(tpm_ops_flood(seed, n)),
        "double-withdrawal" => crate::custody::double_withdrawal(seed, n),
        "forged-withdrawal" => crate::custody::forged_withdrawal(seed, n),
        "custody-member-removed" => crate::custody::custody_member_removed(seed, n),
        _ => return None,
    };
    let attack = MEMBER_SCENARIOS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or_else(String::new, |(_, what)| (*what).to_string());
    Some(Ok(MemberReport {
        scenario: name.to_string(),
        attack,
        seed,
        nodes: n,
        held: achieved.is_empty() && false_evidence == 0,
        height_progress: None,
        false_evidence,
        achieved,
        refused,
        replay: format!("bulwark sim --scenario {name} --seed {seed} --nodes {n}"),
    }))
}

type Outcome = (Vec<String>, Vec<String>);

/// Attack 3: `n` members on the `lookup` network, configured as a node configures it, on the
/// deterministic runtime. Member 1 keeps sending to member 0, which cuts it off as admission
/// does (out of the tracked set: its appraisal lapsed, or was contraindicated), goes through
/// many more admission changes, and readmits it; then blocks it as commonware does for a peer
/// misbehaving on the wire.
fn cut_off_lapse(seed: u64, n: usize) -> Outcome {
    deterministic::Runner::seeded(seed).start(|context| async move {
        let keys: Vec<ed25519::PrivateKey> =
            (0..n as u64).map(ed25519::PrivateKey::from_seed).collect();
        let addresses: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7_400 + i as u16)))
            .collect();
        let set = |members: &[usize]| -> Map<ed25519::PublicKey, Address> {
            members
                .iter()
                .map(|&i| (keys[i].public_key(), Address::Symmetric(addresses[i])))
                .collect::<Vec<_>>()
                .try_into()
                .unwrap()
        };
        let everyone: Vec<usize> = (0..n).collect();
        let without_one: Vec<usize> = (0..n).filter(|&i| i != 1).collect();
        let start = context.current();
        let since = move |now: SystemTime| now.duration_since(start).unwrap().as_millis() as u64;
        // When each message from member 1 reached member 0, ms since the start.
        let arrivals: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
        let mut oracles = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let settings = P2pSettings {
                signer: key.clone(),
                listen: addresses[i],
                loopback: true,
                members: NZUsize!(n),
                max_message_size: 1 << 16,
            };
            let member = context.child("member").with_attribute("index", i);
            let (mut network, mut oracle) =
                lookup::Network::new(member.child("p2p"), config(&settings, b"cut-off-sim"));
            let (mut sender, mut receiver) = network.register(0, Quota::per_second(NZU32!(1_000)));
            network.start();
            let _ = oracle.track(0, set(&everyone));
            let (to, victim) = (keys[0].public_key(), keys[1].public_key());
            if i == 0 {
                let arrivals = arrivals.clone();
                member.child("receive").spawn(move |context| async move {
                    while let Ok((peer, _)) = receiver.recv().await {
                        if peer == victim {
                            arrivals.lock().unwrap().push(since(context.current()));
                        }
                    }
                });
            } else {
                member.child("send").spawn(move |context| async move {
                    loop {
                        sender.send(Recipients::One(to.clone()), IoBuf::from(vec![1u8]), false);
                        context.sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            oracles.push(oracle);
        }
        let mut zero = oracles.swap_remove(0);
        let heard = |from: u64, to: u64| {
            let arrivals = arrivals.lock().unwrap();
            arrivals.iter().filter(|&&at| at >= from && at < to).count()
        };
        let mut set_id = 1;
        let mut track = |oracle: &mut lookup::Oracle<ed25519::PublicKey>, members: &[usize]| {
            let _ = oracle.track(set_id, set(members));
            set_id += 1;
        };
        let (mut achieved, mut refused) = (Vec::new(), Vec::new());
        context.sleep(Duration::from_secs(5)).await;
        let before = heard(0, 5_000);
        if before == 0 {
            // Without a connection first, nothing below would show anything.
            achieved.push(
                "member 1 never got through before the cut-off: the run shows nothing".into(),
            );
        }
        // The appraisal lapses: out of the tracked set, no block; three more changes follow.
        let lapsed = since(context.current());
        track(&mut zero, &without_one);
        for _ in 0..3 {
            context.sleep(Duration::from_secs(2)).await;
            track(&mut zero, &without_one);
        }
        context.sleep(Duration::from_secs(2)).await;
        let after_lapse = heard(lapsed + 200, since(context.current()));
        if after_lapse > 0 {
            achieved.push(format!("{after_lapse} messages after its appraisal lapsed"));
        } else {
            refused.push(
                "lapsed: connection torn down at once, out through 3 more admission changes".into(),
            );
        }
        // Readmitted by a fresh affirming appraisal.
        let readmitted = since(context.current());
        track(&mut zero, &everyone);
        context.sleep(Duration::from_secs(5)).await;
        if heard(readmitted, readmitted + 5_000) == 0 {
            achieved.push(
                "a readmitted member stayed locked out (the cut-off outlasted the fresh appraisal)"
                    .into(),
            );
        }
        // Contraindicated: admission takes it out of the set (no block), through ten changes
        // over 20 s; a fresh affirming appraisal readmits it at once.
        let cut = since(context.current());
        track(&mut zero, &without_one);
        for _ in 0..10 {
            context.sleep(Duration::from_secs(2)).await;
            track(&mut zero, &without_one);
        }
        let after_cut = heard(cut + 200, since(context.current()));
        if after_cut > 0 {
            achieved.push(format!("{after_cut} messages after it was cut off"));
        } else {
            refused.push("contraindicated: out through 10 admission changes over 20 s".into());
        }
        let readmitted = since(context.current());
        track(&mut zero, &everyone);
        context.sleep(Duration::from_secs(5)).await;
        if heard(readmitted, readmitted + 5_000) == 0 {
            achieved.push("a readmitted member stayed locked out".into());
        }
        // Misbehaving on the wire as well (simplex has commonware block it): a block keeps it
        // out even while it is tracked, for commonware's full block length.
        let blocked = since(context.current());
        let _ = zero.block(keys[1].public_key());
        for _ in 0..5 {
            context.sleep(Duration::from_secs(2)).await;
            track(&mut zero, &everyone);
        }
        let after_block = heard(blocked + 200, since(context.current()));
        if after_block > 0 {
            achieved.push(format!("{after_block} messages from a blocked member"));
        } else {
            refused.push(
                "blocked for misbehaviour: out while tracked, through 5 admission changes".into(),
            );
        }
        drop(oracles);
        (achieved, refused)
    })
}

/// Attack 6: whoever can write member 0's data directory swaps its sealed node key.
fn keystore_swap(seed: u64, n: usize) -> Outcome {
    let base = std::env::temp_dir().join(format!(
        "bulwark-sim-keystore-{}-{seed}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let (ours, theirs) = (base.join("node-0"), base.join("node-1"));
    keystore::create_private_dir(&ours).unwrap();
    keystore::create_private_dir(&theirs).unwrap();
    let committee =
        *blake3::hash(&[seed.to_le_bytes(), (n as u64).to_le_bytes()].concat()).as_bytes();
    let binding = Binding {
        role: keystore::NODE_KEY_ROLE,
        identity: &committee,
    };
    let store = Keystore::open(&ours, Migration::Refuse).unwrap();
    let other_store = Keystore::open(&theirs, Migration::Refuse).unwrap();
    let key_file = ours.join("node.key");
    let mut achieved = Vec::new();
    let mut refused = Vec::new();
    let mut attempt = |what: &str, plant: &dyn Fn(&std::path::Path)| {
        plant(&key_file);
        match store.unseal(&key_file, &binding) {
            Ok(secret) => achieved.push(format!(
                "{what}: the node read {} planted bytes as its key",
                secret.len()
            )),
            Err(error) => refused.push(format!("{what}: {}", refusal_kind(&error))),
        }
    };
    attempt("a plain key of the attacker's", &|path| {
        keystore::write_private(path, b"attacker's plain key").unwrap()
    });
    attempt("member 1's sealed node key", &|path| {
        other_store.seal(path, &binding, b"member 1's key").unwrap()
    });
    attempt(
        "a key sealed for another committee under this node's own keystore key",
        &|path| {
            let elsewhere = Binding {
                identity: b"another committee",
                ..binding.clone()
            };
            store
                .seal(path, &elsewhere, b"another committee's key")
                .unwrap()
        },
    );
    attempt("a DKG share moved into the node key's place", &|path| {
        let share = Binding {
            role: keystore::SHARE_ROLE,
            ..binding.clone()
        };
        store.seal(path, &share, b"a share").unwrap()
    });
    attempt("the honest key made readable by others", &|path| {
        use std::os::unix::fs::PermissionsExt as _;
        store.seal(path, &binding, b"honest key").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    });
    let _ = std::fs::remove_dir_all(&base);
    (achieved, refused)
}

fn refusal_kind(error: &KeystoreError) -> String {
    let kind = match error {
        KeystoreError::Plaintext(_) => "refused as a plain file",
        KeystoreError::Decrypt(_) => "refused: does not open for this role and committee",
        KeystoreError::Exposed { .. } => "refused: others can read it",
        KeystoreError::Legacy(_) => "refused as an older envelope",
        _ => "refused",
    };
    kind.to_string()
}

/// Attack 9: every development path in a production configuration, and development evidence
/// handed to a member that is not a development node.
fn dev_paths_in_production(n: usize) -> Outcome {
    let production = |admission: Option<AdmissionMode>, loopback: bool| NodeConfig {
        name: "node-0".into(),
        data_center: "dc-0".into(),
        key_file: "node.key".into(),
        data_dir: ".".into(),
        genesis_file: "genesis.json".into(),
        p2p_listen: "127.0.0.1:7100".parse().unwrap(),
        client_listen: "127.0.0.1:7200".parse().unwrap(),
        loopback,
        block_txs_max: 2_048,
        verify_threads: 1,
        snapshot_every: 1_000,
        peers: (0..n)
            .map(|i| Peer {
                public_key: format!("{:064x}", i + 1),
                address: SocketAddr::from(([127, 0, 0, 1], 7_100 + i as u16)),
                data_center: format!("dc-{i}"),
                client_address: Some(SocketAddr::from(([127, 0, 0, 1], 7_200 + i as u16))),
                tpm_ek: Some("00ab".into()),
                tpm_ek_cert: None,
                candidate: false,
            })
            .collect(),
        oracle: Vec::new(),
        admission: admission.map(|mode| AdmissionConfig {
            mode,
            tcti: Some("device:/dev/tpmrm0".into()),
            launch_log: (mode == AdmissionMode::Tpm).then(|| "launch.log".into()),
            interval_ms: 1_000,
            appraisal_ttl_ms: None,
            manifest_file: "manifest.json".into(),
            operators_file: "operators.json".into(),
            attestor_key_file: Some("attestor.key".into()),
            ek_ca_file: None,
            tsm_dir: None,
            vcek_file: None,
            crl_file: None,
            collateral_file: None,
        }),
        vault: None,
        audit: None,
        operator: None,
        development: false,
    };
    let path = std::path::Path::new("node.toml");
    let mut achieved = Vec::new();
    let mut refused = Vec::new();
    let mut dev_on_wide = production(Some(AdmissionMode::Dev), false);
    dev_on_wide.development = true;
    for (what, config) in [
        ("[admission] left out", production(None, true)),
        (
            "mode = \"dev\" in production",
            production(Some(AdmissionMode::Dev), true),
        ),
        ("mode = \"dev\" with loopback = false", dev_on_wide),
        ("[vault] backend = \"file\" in production", {
            let mut config = production(Some(AdmissionMode::Tpm), false);
            config.vault = Some(bulwark_node::node::config::VaultConfig {
                backend: bulwark_node::node::config::VaultBackend::File,
                pkcs11: None,
            });
            config
        }),
    ] {
        match config.validate(path) {
            Ok(()) => achieved.push(format!("{what}: accepted")),
            Err(error) => refused.push(format!("{what}: {error}")),
        }
    }
    if production(Some(AdmissionMode::Tpm), false)
        .validate(path)
        .is_err()
    {
        achieved.push(
            "the production TPM configuration itself was refused (the check proves nothing)".into(),
        );
    }
    // A peer hands development evidence to a TPM member whose manifest has a dev section.
    let cut = crate::admission::dev_evidence_at_a_tpm_member();
    if cut {
        refused.push(
            "development evidence at a TPM member: cut off (dev-evidence-not-accepted)".into(),
        );
    } else {
        achieved.push("a TPM member admitted a peer on development evidence".into());
    }
    (achieved, refused)
}

/// Attack 10: a stranger and a member flood member 0's TPM operations, and a stranger forges
/// requests in an honest member's name, for 10 s of (simulated) time while the honest members
/// ask for one quote a second each.
fn tpm_ops_flood(seed: u64, n: usize) -> Outcome {
    let key = |i: u64| {
        ed25519_dalek::SigningKey::from_bytes(
            &blake3::hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()).into(),
        )
    };
    let members: Vec<ed25519_dalek::SigningKey> = (0..n as u64).map(key).collect();
    let stranger = key(1_000);
    let node = members[0].verifying_key().to_bytes();
    let committee = *blake3::hash(b"the simulated committee").as_bytes();
    let gate = PeerGate::new(
        node,
        &committee,
        members.iter().map(|k| k.verifying_key().to_bytes()),
    );
    let me = bulwark_api::wire::peer_target(&committee, &node);
    let (start, start_ms) = (Instant::now(), 1_800_000_000_000u64);
    let flooder = &members[1];
    let mut served = [0u64; 4]; // stranger, forged, flooder, honest
    let mut honest_asked = 0u64;
    let ops = [
        PeerOp::Attest { nonce: [1; 32] },
        PeerOp::AttestKey,
        PeerOp::Activate {
            credential_blob: vec![2; 40],
            encrypted_secret: vec![3; 64],
        },
    ];
    for tick in 0..10_000u64 {
        // One millisecond per tick.
        let (now, now_ms) = (start + Duration::from_millis(tick), start_ms + tick);
        let op = &ops[(tick % 3) as usize];
        let mut ask = |who: &ed25519_dalek::SigningKey,
                       claimed: Option<&ed25519_dalek::SigningKey>,
                       slot: usize,
                       salt: u64| {
            let mut auth = PeerAuth::sign(who, &me, now_ms + salt, op);
            if let Some(claimed) = claimed {
                auth.peer = claimed.verifying_key().to_bytes();
            }
            if gate.admit(&auth, op, now_ms, now).is_ok() {
                served[slot] += 1;
            }
        };
        ask(&stranger, None, 0, 0);
        ask(&stranger, Some(&members[2 % n]), 1, 0);
        ask(flooder, None, 2, 0);
        if tick % 1_000 == 0 {
            for member in members.iter().skip(2) {
                honest_asked += 1;
                ask(member, None, 3, 1);
            }
        }
    }
    let mut achieved = Vec::new();
    let mut refused = Vec::new();
    if served[0] > 0 {
        achieved.push(format!(
            "the stranger had {} TPM operations served",
            served[0]
        ));
    } else {
        refused.push("stranger: 10 000 requests, none served (not a committee peer)".into());
    }
    if served[1] > 0 {
        achieved.push(format!(
            "{} forged requests in a member's name served",
            served[1]
        ));
    } else {
        refused.push("forgeries in a member's name: 10 000, none served (signature)".into());
    }
    let allowed = (PEER_OPS_BURST + 10.0 * PEER_OPS_PER_SECOND) as u64 + 1;
    if served[2] > allowed {
        achieved.push(format!(
            "the flooding member had {} operations served (at most {allowed})",
            served[2]
        ));
    } else {
        refused.push(format!(
            "flooding member: 10 000 requests, {} served (rate bound {allowed})",
            served[2]
        ));
    }
    if served[3] < honest_asked {
        achieved.push(format!(
            "honest members starved: {} of {honest_asked} quotes served",
            served[3]
        ));
    }
    (achieved, refused)
}
