//! What the encryption layer costs on the memory store, against the unencrypted store plus
//! the raw AEAD alone, in the same run (read by `cargo xtask bench` as time ratios subject /
//! baseline; the goal is at most 1.2×).
//!
//! - `encrypted_memory_get`: `baseline_memory_get_plus_raw_aead_open` (a `get` of the
//!   unencrypted memory store, then XChaCha20-Poly1305 opening a sealed record of the same
//!   size in place) vs `get` through the layer; `memory_get` alone for scale.
//! - `encrypted_memory_put`: `baseline_memory_put_plus_raw_aead_seal` (a `put`, then sealing
//!   a record of the same size in place with a fresh random nonce) vs `put` through the
//!   layer; `memory_put` alone for scale.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use chacha20poly1305::aead::{AeadInPlace as _, KeyInit as _};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use grantkit_core::store::Precondition;
use grantkit_core::{
    AccessToken, GrantKind, MemoryTokenStore, RefreshToken, TokenKey, TokenSet, TokenStore,
};
use grantkit_store_encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use rand::RngCore as _;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

/// A realistic grant: 40-character tokens, expiries, scopes and one extra.
fn tokens() -> TokenSet {
    TokenSet::new(
        AccessToken::new("0001-access-0123456789abcdefghijklmnopqrstu"),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(
        "0001-refresh-0123456789abcdefghijklmnopqrst",
    ))
    .with_scopes(["user_info", "scheduler"])
    .with_extra("email", "bench@example.com")
    .expiring_in(SystemTime::now(), Duration::from_secs(3600))
}

fn key() -> TokenKey {
    TokenKey::new("joinme", "bench-client", "user-1@example.com")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The raw AEAD on a buffer the size of the sealed plaintext.
struct RawAead {
    cipher: XChaCha20Poly1305,
    size: usize,
}

impl RawAead {
    fn new(size: usize) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
            size,
        }
    }

    fn seal(&self, buffer: &mut Vec<u8>) -> XNonce {
        let mut nonce = XNonce::default();
        rand::rng().fill_bytes(&mut nonce);
        self.cipher
            .encrypt_in_place(&nonce, b"associated data", buffer)
            .expect("sealed");
        nonce
    }

    fn sealed(&self) -> (XNonce, Vec<u8>) {
        let mut buffer = vec![7u8; self.size];
        let nonce = self.seal(&mut buffer);
        (nonce, buffer)
    }

    fn open(&self, nonce: &XNonce, buffer: &mut Vec<u8>) {
        self.cipher
            .decrypt_in_place(nonce, b"associated data", buffer)
            .expect("opened");
    }
}

fn layer(c: &mut Criterion) {
    let rt = runtime();
    let key = key();
    let tokens = tokens();
    let plain = MemoryTokenStore::new();
    let sealed = EncryptedTokenStore::new(
        MemoryTokenStore::new(),
        Keyring::new(SealingKey::generate("bench").expect("a key")),
    );
    rt.block_on(async {
        plain.put(&key, &tokens, Precondition::Any).await.unwrap();
        sealed.put(&key, &tokens, Precondition::Any).await.unwrap();
    });
    // The AEAD baseline works on as many bytes as the layer seals.
    let mut plaintext = Vec::new();
    grantkit_core::store::codec::encode_token_set_compact_into(&tokens, &mut plaintext);
    let size = plaintext.len();
    let aead = RawAead::new(size);

    let mut group = c.benchmark_group("encrypted_memory_get");
    let (nonce, ciphertext) = aead.sealed();
    group.bench_function("baseline_memory_get_plus_raw_aead_open", |b| {
        b.iter_batched_ref(
            || ciphertext.clone(),
            |buffer| {
                let found = rt.block_on(plain.get(&key)).unwrap();
                aead.open(&nonce, buffer);
                black_box(found)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("memory_get", |b| {
        b.iter(|| black_box(rt.block_on(plain.get(&key)).unwrap()))
    });
    group.bench_function("get", |b| {
        b.iter(|| black_box(rt.block_on(sealed.get(&key)).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("encrypted_memory_put");
    group.bench_function("baseline_memory_put_plus_raw_aead_seal", |b| {
        b.iter_batched_ref(
            || vec![7u8; size],
            |buffer| {
                let version = rt
                    .block_on(plain.put(&key, &tokens, Precondition::Any))
                    .unwrap();
                black_box(aead.seal(buffer));
                version
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("memory_put", |b| {
        b.iter(|| {
            rt.block_on(plain.put(&key, &tokens, Precondition::Any))
                .unwrap()
        })
    });
    group.bench_function("put", |b| {
        b.iter(|| {
            rt.block_on(sealed.put(&key, &tokens, Precondition::Any))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
