//! The tests every backend passes: the PKCS#11 backend against SoftHSM2 (this crate's tests) and
//! the node's keystore against swtpm and in development mode (the node's tests) run the same
//! [`exercise`]. Test support: it panics on the first promise a backend breaks.

use std::collections::BTreeMap;
use std::path::Path;

use bulwark_vault::keygen::KeyShare;
use bulwark_vault::release::{VaultSuite, Watermarks};
use bulwark_vault::signing::NonceBook;
use bulwark_vault::{Chain, Ed25519, Member, Taproot};

use crate::{Sealer, ShareBinding, StoreError, VaultFiles};

/// Every member's share of a fresh 4-member key (in memory, for tests).
pub fn shares<C: VaultSuite>(label: u8) -> BTreeMap<Member, KeyShare<C>> {
    bulwark_vault::keygen::local::dkg(4, [label; 32]).expect("a valid committee")
}

/// Runs every promise against `sealer`, with the vault of member 2 in `data_dir`.
pub fn exercise<S: Sealer>(mut sealer: S, data_dir: &Path) {
    let kind = sealer.kind().name();
    // Sealing: opens with the same associated data only.
    let binding = ShareBinding {
        role: "share",
        chain: Chain::Bitcoin,
        group_key: vec![2; 33],
        member: 2,
        epoch: 1,
    };
    let ad = binding.associated_data();
    let secret = b"a share's bytes".to_vec();
    let sealed = sealer.seal(&ad, &secret).expect("seals");
    assert!(
        !sealed.windows(secret.len()).any(|w| w == secret),
        "{kind}: the plaintext does not appear in the sealed bytes"
    );
    assert_eq!(&sealer.open(&ad, &sealed).expect("opens")[..], &secret[..]);
    assert_ne!(
        sealer.seal(&ad, &secret).expect("seals"),
        sealed,
        "{kind}: a fresh IV each time"
    );
    for other in [
        ShareBinding {
            member: 3,
            ..binding.clone()
        },
        ShareBinding {
            epoch: 2,
            ..binding.clone()
        },
        ShareBinding {
            chain: Chain::Ed25519,
            ..binding.clone()
        },
        ShareBinding {
            group_key: vec![3; 33],
            ..binding.clone()
        },
        ShareBinding {
            role: "nonces",
            ..binding.clone()
        },
    ] {
        assert!(
            matches!(
                sealer.open(&other.associated_data(), &sealed),
                Err(StoreError::Open(_))
            ),
            "{kind}: {other:?} does not open the file sealed for {binding:?}"
        );
    }
    for index in (0..sealed.len()).step_by(3) {
        let mut flipped = sealed.clone();
        flipped[index] ^= 0x21;
        assert!(
            matches!(sealer.open(&ad, &flipped), Err(StoreError::Open(_))),
            "{kind}: byte {index} flipped does not open"
        );
    }
    for garbage in [&[][..], &sealed[..sealed.len() - 1], &[0u8; 40][..]] {
        assert!(matches!(
            sealer.open(&ad, garbage),
            Err(StoreError::Open(_))
        ));
    }

    // Files: shares, nonces and watermarks survive a reopen; files swapped between epochs,
    // members or roles do not open.
    let bitcoin = shares::<Taproot>(31);
    let ed25519 = shares::<Ed25519>(32);
    let mut files = VaultFiles::open(data_dir, 2, sealer).expect("vault dir");
    files.put_share(1, &bitcoin[&2]).expect("stores");
    files.put_share(2, &bitcoin[&2]).expect("stores");
    files.put_share(1, &ed25519[&2]).expect("stores");
    assert!(
        matches!(
            files.put_share(1, &bitcoin[&3]),
            Err(StoreError::Content(..))
        ),
        "{kind}: another member's share is not stored in this vault"
    );
    let key = bitcoin[&2].group_key();
    assert_eq!(
        files.share::<Taproot>(1, &key).expect("reads"),
        Some(bitcoin[&2].clone())
    );
    assert_eq!(
        files
            .share::<Ed25519>(1, &ed25519[&2].group_key())
            .expect("reads"),
        Some(ed25519[&2].clone())
    );
    assert_eq!(files.share::<Taproot>(7, &key).expect("absent"), None);
    let vault = data_dir.join("vault");
    std::fs::copy(vault.join("bitcoin.1.share"), vault.join("bitcoin.5.share")).expect("copy");
    assert!(
        matches!(files.share::<Taproot>(5, &key), Err(StoreError::Open(_))),
        "{kind}: epoch 1's share copied to epoch 5 does not open"
    );
    assert!(
        files.share::<Taproot>(1, &ed25519[&2].group_key()).is_err(),
        "{kind}: the share does not open for another group key"
    );
    let mut book = NonceBook::default();
    let published = book.precompute(&bitcoin[&2], 4, [9; 32]);
    book.spend(published[1].0).expect("unspent");
    files.put_nonces(2, &key, &book).expect("stores");
    let mut reopened = files.nonces::<Taproot>(2, &key).expect("reads");
    assert_eq!(reopened.unspent(), 3);
    assert!(
        reopened.spend(published[1].0).is_err(),
        "{kind}: a spent nonce stays spent"
    );
    let mut marks = Watermarks::default();
    assert!(marks.mark(Chain::Bitcoin, 41, [4; 32]));
    files
        .put_watermarks(Chain::Bitcoin, &key, &marks)
        .expect("stores");
    assert!(files
        .watermarks(Chain::Bitcoin, &key)
        .expect("reads")
        .is_marked(Chain::Bitcoin, 41));
    assert!(files
        .watermarks(Chain::Ed25519, &key)
        .expect("none yet")
        .eq(&Watermarks::default()));
    // Written in place, to the region not holding the newest record: a write torn by a stop
    // (the newest region damaged) reads as the state before it.
    let before = marks.clone();
    assert!(marks.mark(Chain::Bitcoin, 42, [5; 32]));
    files
        .put_watermarks(Chain::Bitcoin, &key, &marks)
        .expect("stores in place");
    assert_eq!(
        files.watermarks(Chain::Bitcoin, &key).expect("reads"),
        marks
    );
    let path = vault.join("bitcoin.watermarks");
    let mut bytes = std::fs::read(&path).expect("reads");
    let region_len = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    bytes[crate::files::TWO_REGION_HEADER + region_len + 4 + 20] ^= 0x55;
    std::fs::write(&path, &bytes).expect("writes");
    assert!(!files.take_torn(Chain::Bitcoin));
    assert_eq!(
        files
            .watermarks(Chain::Bitcoin, &key)
            .expect("the older region reads"),
        before,
        "{kind}: a torn newest record leaves the state before it"
    );
    assert!(
        files.take_torn(Chain::Bitcoin),
        "{kind}: the reader is told a record did not open"
    );
    assert!(!files.take_torn(Chain::Bitcoin), "asking clears it");
    // The next write goes over the damaged region; a record outgrowing its region makes a new
    // file with larger regions.
    for id in 100..1_500u64 {
        assert!(marks.mark(Chain::Bitcoin, id, [6; 32]));
    }
    files
        .put_watermarks(Chain::Bitcoin, &key, &marks)
        .expect("stores, growing");
    assert_eq!(
        files.watermarks(Chain::Bitcoin, &key).expect("reads"),
        marks
    );
    assert!(std::fs::metadata(&path).expect("exists").len() > 2 * 64 * 1024);
    std::fs::copy(
        vault.join("bitcoin.2.nonces"),
        vault.join("bitcoin.watermarks"),
    )
    .expect("copy");
    assert!(
        files.watermarks(Chain::Bitcoin, &key).is_err(),
        "{kind}: a nonce file in the watermarks' place does not open"
    );
    // Key-generation randomness: stored, read back, bound to its chain and epoch, forgotten.
    assert_eq!(files.dkg_seed(Chain::Bitcoin, 0).expect("none yet"), None);
    files
        .put_dkg_seed(Chain::Bitcoin, 0, &[8; 32])
        .expect("stores");
    assert_eq!(
        files.dkg_seed(Chain::Bitcoin, 0).expect("reads"),
        Some([8; 32])
    );
    std::fs::copy(
        vault.join("bitcoin.0.dkg-seed"),
        vault.join("ed25519.0.dkg-seed"),
    )
    .expect("copy");
    assert!(
        files.dkg_seed(Chain::Ed25519, 0).is_err(),
        "{kind}: another chain's seed does not open"
    );
    files.forget_dkg_seed(Chain::Bitcoin, 0).expect("forgets");
    files.forget_dkg_seed(Chain::Ed25519, 0).expect("forgets");
    assert_eq!(files.dkg_seed(Chain::Bitcoin, 0).expect("gone"), None);
    // Pruning removes the older epochs' shares and nonces only.
    std::fs::remove_file(vault.join("bitcoin.5.share")).expect("remove");
    assert_eq!(files.prune_before(Chain::Bitcoin, 2).expect("prunes"), 1);
    assert_eq!(files.share::<Taproot>(1, &key).expect("gone"), None);
    assert!(files.share::<Taproot>(2, &key).expect("kept").is_some());
    assert!(files
        .share::<Ed25519>(1, &ed25519[&2].group_key())
        .expect("kept")
        .is_some());
}
