//! Encryption at rest: the keyring, what [`SealedStore`] leaves in the store, the marker checks
//! at start and `rekey`.
#![cfg(feature = "testkit")]

use std::sync::Arc;
use std::time::Duration;

use hookline_core::model::{Account, Endpoint, EndpointSecret, Event, EventFilter, PageRequest};
use hookline_core::sealing::{
    self, Keyring, SealedStore, SealingError, SealingOptions, check_unsealed, read_marker,
};
use hookline_core::signing::Secret;
use hookline_core::store::{EndpointStore, HistoryStore, QueueStore, Store};
use hookline_core::testkit::MemoryStore;
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, Timestamp};
use serde_json::value::RawValue;

const TOKEN: &str = "Bearer tok-9f3e-receiver-credential";
const MARKER: &str = "glucose-reading-7731";

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn key(id: &str) -> String {
    Keyring::generate(id).expect("key").1
}

fn ring(text: &str) -> Arc<Keyring> {
    Arc::new(Keyring::parse(text).expect("keyring"))
}

async fn sealed(inner: &Arc<MemoryStore>, keys: &str, payloads: bool) -> SealedStore<MemoryStore> {
    SealedStore::open(
        inner.clone(),
        ring(keys),
        SealingOptions::new().payloads(payloads),
    )
    .await
    .expect("open")
}

/// An account with one endpoint (a secret and an `Authorization` header) and one event.
async fn fill(s: &dyn Store) -> (AccountId, Endpoint, Event) {
    let a = AccountId::parse("acme").unwrap();
    s.create_account(&Account::new(a.clone(), "Acme", t(0)))
        .await
        .unwrap();
    let mut ep = Endpoint::new(
        EndpointId::generate(),
        a.clone(),
        "https://receiver.example/hook",
        vec![EndpointSecret::new(Secret::generate(), t(0))],
        t(0),
    );
    ep.headers.insert("Authorization".into(), TOKEN.into());
    s.create_endpoint(&ep).await.unwrap();
    let data = RawValue::from_string(format!("{{\"reading\": \"{MARKER}\"}}")).unwrap();
    let ev = Event::new(
        EventId::generate(),
        a.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        data,
        t(1),
    );
    s.enqueue(&ev, std::slice::from_ref(&ep.id), t(1))
        .await
        .unwrap();
    (a, ep, ev)
}

/// Everything the memory store holds about the account, as text.
async fn raw_dump(inner: &MemoryStore, a: &AccountId) -> String {
    let eps = inner
        .list_endpoints(a, &PageRequest::first(100))
        .await
        .unwrap();
    let evs = inner
        .list_events(a, &EventFilter::default(), &PageRequest::first(100))
        .await
        .unwrap();
    format!(
        "{}\n{}",
        serde_json::to_string(&eps.items).unwrap(),
        serde_json::to_string(&evs.items).unwrap()
    )
}

#[test]
fn keyring_text_is_checked() {
    let k1 = key("k1");
    let k2 = key("k-2_b");
    let both = Keyring::parse(&format!("# current first\n{k2}\n{k1}\n")).unwrap();
    assert_eq!(both.current_id(), "k-2_b");
    assert_eq!(both.ids().collect::<Vec<_>>(), ["k-2_b", "k1"]);
    assert!(Keyring::parse(&format!("{k2},{k1}")).is_ok());
    assert!(!format!("{both:?}").contains(k1.split_once(':').unwrap().1));
    for bad in [
        "",
        "# only a comment",
        "nokey",
        "k1:not-base64!",
        "k1:AAAA",
        "bad id:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        assert!(Keyring::parse(bad).is_err(), "{bad:?} is refused");
    }
    assert!(matches!(
        Keyring::parse(&format!("{k1},{k1}")),
        Err(SealingError::InvalidKey(_))
    ));
}

#[test]
fn sealed_values_open_only_in_their_place_and_with_their_key() {
    let k1 = key("k1");
    let old = ring(&k1);
    let sealed = old.seal(b"secret text", "acme/ep_1/header/X");
    assert!(sealing::is_sealed(&sealed));
    assert_eq!(sealing::sealed_key_id(&sealed), Some("k1"));
    assert!(!sealed.contains("secret"));
    assert_ne!(
        sealed,
        old.seal(b"secret text", "acme/ep_1/header/X"),
        "random nonce"
    );
    assert_eq!(
        old.open(&sealed, "acme/ep_1/header/X").unwrap().as_slice(),
        b"secret text"
    );
    assert!(matches!(
        old.open(&sealed, "acme/ep_2/header/X"),
        Err(SealingError::Undecryptable(_))
    ));
    // Rotation: a new current key, the old one still opens.
    let rotated = ring(&format!("{},{k1}", key("k2")));
    assert_eq!(
        rotated
            .open(&sealed, "acme/ep_1/header/X")
            .unwrap()
            .as_slice(),
        b"secret text"
    );
    assert_eq!(sealing::sealed_key_id(&rotated.seal(b"x", "p")), Some("k2"));
    // Without the old key, or with other bytes under its id, it does not.
    assert!(matches!(
        ring(&key("k2")).open(&sealed, "acme/ep_1/header/X"),
        Err(SealingError::UnknownKey(_))
    ));
    assert!(matches!(
        ring(&key("k1")).open(&sealed, "acme/ep_1/header/X"),
        Err(SealingError::Undecryptable(_))
    ));
    let mut tampered = sealed.clone();
    tampered.pop();
    tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
    assert!(old.open(&tampered, "acme/ep_1/header/X").is_err());
}

#[tokio::test]
async fn the_store_holds_only_sealed_values_and_callers_see_plaintext() {
    let inner = Arc::new(MemoryStore::new());
    let store = sealed(&inner, &key("k1"), true).await;
    let (a, ep, ev) = fill(&store).await;

    let dump = raw_dump(&inner, &a).await;
    let secret = ep.secrets[0].key.expose();
    for plain in [secret.as_str(), TOKEN, MARKER, &secret[6..]] {
        assert!(
            !dump.contains(plain),
            "{plain:?} is not stored in the clear"
        );
    }
    assert!(dump.contains("Authorization"), "header names stay readable");
    assert!(
        dump.contains("https://receiver.example/hook"),
        "URLs stay readable"
    );

    assert_eq!(store.endpoint(&a, &ep.id).await.unwrap(), Some(ep.clone()));
    assert_eq!(store.event(&a, &ev.id).await.unwrap(), Some(ev.clone()));
    let claimed = store
        .claim_due(t(2), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.secrets, ep.secrets);
    assert_eq!(claimed[0].endpoint.headers["Authorization"], TOKEN);
    assert_eq!(claimed[0].event.data.get(), ev.data.get());
    assert_eq!(claimed[0].endpoint.active_secrets(t(2)).len(), 1);

    // Read without opening, a secret signs nothing.
    let stored = inner.endpoint(&a, &ep.id).await.unwrap().unwrap();
    assert!(stored.secrets[0].key.is_sealed());
    assert!(stored.active_secrets(t(2)).is_empty());
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let inner = Arc::new(MemoryStore::new());
    let store = sealed(&inner, &key("k1"), false).await;
    let (a, ep, _) = fill(&store).await;
    let mut other = Endpoint::new(
        EndpointId::generate(),
        a.clone(),
        "https://other.example/hook",
        vec![EndpointSecret::new(Secret::generate(), t(0))],
        t(0),
    );
    other
        .headers
        .insert("Authorization".into(), "Bearer other".into());
    store.create_endpoint(&other).await.unwrap();
    // Copy the first endpoint's sealed header into the second one, behind the wrapper's back.
    let stored = inner.endpoint(&a, &ep.id).await.unwrap().unwrap();
    let mut swapped = inner.endpoint(&a, &other.id).await.unwrap().unwrap();
    swapped.headers = stored.headers.clone();
    inner.update_endpoint(&swapped).await.unwrap();
    assert!(store.endpoint(&a, &other.id).await.is_err());
    assert!(store.endpoint(&a, &ep.id).await.is_ok());
}

#[tokio::test]
async fn starting_checks_the_keys_against_the_marker() {
    let inner = Arc::new(MemoryStore::new());
    check_unsealed(&*inner)
        .await
        .expect("a new store needs no key");
    let k1 = key("k1");
    let store = sealed(&inner, &k1, false).await;
    fill(&store).await;

    let err = check_unsealed(&*inner).await.unwrap_err();
    assert_eq!(err, SealingError::KeyRequired(vec!["k1".into()]));
    assert!(err.to_string().contains("HOOKLINE_ENCRYPTION_KEY"), "{err}");

    let open = |keys: String| {
        let inner = inner.clone();
        async move { SealedStore::open(inner, ring(&keys), SealingOptions::new()).await }
    };
    assert_eq!(
        open(key("k2")).await.unwrap_err(),
        SealingError::MissingKey("k1".into())
    );
    assert_eq!(
        open(key("k1")).await.unwrap_err(),
        SealingError::WrongKey("k1".into()),
        "same id, other bytes"
    );
    open(k1.clone()).await.expect("the right key");
    // A rotated keyring (new key first) starts, and records the new key as in use.
    open(format!("{},{k1}", key("k2"))).await.expect("rotated");
    let ids = read_marker(&*inner).await.unwrap().unwrap().key_ids();
    assert_eq!(ids, ["k1", "k2"]);
}

#[tokio::test]
async fn rekey_seals_everything_with_the_current_key_so_old_keys_can_go() {
    let inner = Arc::new(MemoryStore::new());
    let k1 = key("k1");
    let store = sealed(&inner, &k1, true).await;
    let (a, ep, ev) = fill(&store).await;
    // An event stored in the clear before payloads were sealed (here: behind the wrapper).
    let mut plain = ev.clone();
    plain.id = EventId::generate();
    inner
        .enqueue(&plain, std::slice::from_ref(&ep.id), t(3))
        .await
        .unwrap();

    let k2 = key("k2");
    let rotated = sealed(&inner, &format!("{k2},{k1}"), true).await;
    let mut seen = Vec::new();
    let done = rotated.rekey(|p| seen.push(p)).await.expect("rekey");
    assert_eq!((done.done, done.total, done.rewritten), (3, 3, 3));
    assert_eq!(seen.last(), Some(&done));
    assert_eq!(seen.first().map(|p| p.done), Some(0));

    let dump = raw_dump(&inner, &a).await;
    assert!(!dump.contains("hk1:k1:"), "nothing sealed with k1 is left");
    assert!(!dump.contains(MARKER) && !dump.contains(TOKEN));
    assert_eq!(
        read_marker(&*inner).await.unwrap().unwrap().key_ids(),
        ["k2"]
    );

    // The old key can go now.
    let only_new = sealed(&inner, &k2, true).await;
    assert_eq!(only_new.endpoint(&a, &ep.id).await.unwrap(), Some(ep));
    assert_eq!(only_new.event(&a, &ev.id).await.unwrap(), Some(ev));
    let got = only_new.event(&a, &plain.id).await.unwrap().unwrap();
    assert_eq!(got.data.get(), plain.data.get());
    // A second rekey finds nothing to do.
    let again = only_new.rekey(|_| {}).await.unwrap();
    assert_eq!((again.done, again.rewritten), (3, 0));
}
