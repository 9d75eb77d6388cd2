//! Every vault decoder of bytes a peer or a disk hands a member: the signing round's frames, a
//! deposit attestation, a coordinator's unsigned Bitcoin transaction, FROST packages and shares
//! in both ciphersuites, and the member's own sealed key share and nonce book. The first byte
//! picks the decoder. Nothing may panic; what a decoder takes must encode (the encoders
//! `expect` that a value they are given serializes) and decode to itself again.

#![no_main]

use bulwark_vault::deposit::Attestation;
use bulwark_vault::keygen::KeyShare;
use bulwark_vault::repair::decode_public;
use bulwark_vault::round::Message;
use bulwark_vault::signing::{decode_package, decode_share, NonceBook};
use bulwark_vault::taproot;
use bulwark_vault::{Ed25519 as Ed25519Sha512, Taproot as Secp256K1Sha256TR};
use libfuzzer_sys::fuzz_target;

/// A coordinator's signing package, a signer's share and a public key package in suite `C`.
fn frost_bytes<C: frost_core::Ciphersuite>(bytes: &[u8]) {
    let _ = decode_package::<C>(bytes);
    let _ = decode_share::<C>(bytes);
    let _ = decode_public::<C>(bytes);
}

/// A member's sealed key share in suite `C`: what is read back writes and reads the same again.
fn key_share<C: frost_core::Ciphersuite>(bytes: &[u8]) {
    if let Ok(share) = KeyShare::<C>::from_bytes(bytes) {
        let again =
            KeyShare::<C>::from_bytes(&share.to_bytes()).expect("a taken key share re-reads");
        assert_eq!(
            again.to_bytes(),
            share.to_bytes(),
            "a key share round-trips"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, bytes)) = input.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(message) = Message::decode(bytes) {
                let encoded = message.encode();
                assert_eq!(
                    Message::decode(&encoded).expect("a taken frame re-decodes"),
                    message,
                    "a signing frame must decode to itself again"
                );
            }
        }
        1 => {
            if let Ok(attestation) = Attestation::decode(bytes) {
                assert_eq!(attestation.encode(), bytes, "attestations are canonical");
            }
        }
        2 => {
            if let Ok(tx) = taproot::decode(bytes) {
                let encoded = bitcoin::consensus::serialize(&tx);
                assert_eq!(
                    taproot::decode(&encoded).expect("a taken transaction re-decodes"),
                    tx,
                    "a transaction must decode to itself again"
                );
            }
        }
        3 => frost_bytes::<Ed25519Sha512>(bytes),
        4 => frost_bytes::<Secp256K1Sha256TR>(bytes),
        5 => key_share::<Ed25519Sha512>(bytes),
        6 => key_share::<Secp256K1Sha256TR>(bytes),
        _ => {
            if let Ok(book) = NonceBook::<Ed25519Sha512>::from_bytes(bytes) {
                let again = NonceBook::<Ed25519Sha512>::from_bytes(&book.to_bytes())
                    .expect("a taken nonce book re-reads");
                assert_eq!(
                    again.to_bytes(),
                    book.to_bytes(),
                    "a nonce book round-trips"
                );
            }
        }
    }
});
