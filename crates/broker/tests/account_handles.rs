//! Broker handles in an account ([`Broker::in_account`]): their internal
//! subscriptions and publishes are in that account's subject space, as JetStream
//! serving several accounts needs (one API subscriber per account).

mod common;

use std::sync::Arc;

use common::{EVENTUALLY, TestBroker};
use futures::StreamExt;
use infinistream_broker::{Auth, BrokerConfig, Credential, InternalSubscription, User, Users};
use tokio::time::timeout;

fn user(name: &str, account: &str) -> User {
    User {
        name: name.into(),
        credential: Credential::password("pw".into()),
        permissions: None,
        account: account.into(),
    }
}

async fn connect(tb: &TestBroker, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(name.into(), "pw".into())
        .connect(tb.url())
        .await
        .expect("connect")
}

async fn recv(sub: &mut InternalSubscription) -> infinistream_broker::InternalMsg {
    timeout(EVENTUALLY, sub.recv())
        .await
        .expect("message in time")
        .expect("subscription open")
}

/// Two handles, in accounts A and B, each subscribe to `$JS.API.>`: a request from a
/// client of A reaches A's subscriber only and B's answer reaches B's client only;
/// the handle from `Broker::new` stays in the JetStream account (A).
#[tokio::test]
async fn internal_subscribers_and_publishes_stay_in_their_account() {
    let users = Users::new(vec![user("a", "A"), user("b", "B")])
        .expect("users")
        .with_jetstream_account("A");
    let tb = TestBroker::start(BrokerConfig {
        auth: Some(Auth::Users(Arc::new(users))),
        ..BrokerConfig::default()
    })
    .await;
    assert_eq!(tb.broker.jetstream_account(), "A");
    let in_a = tb.broker.in_account("A");
    let in_b = tb.broker.in_account("B");
    assert_eq!(in_b.jetstream_account(), "B");
    let mut api_a = in_a
        .subscribe_internal("$JS.API.>", None, 16)
        .expect("sub A");
    let mut api_b = in_b
        .subscribe_internal("$JS.API.>", None, 16)
        .expect("sub B");
    let a = connect(&tb, "a").await;
    let b = connect(&tb, "b").await;
    let mut inbox_a = a.subscribe("reply.x").await.expect("sub");
    let mut inbox_b = b.subscribe("reply.x").await.expect("sub");
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");

    a.publish_with_reply("$JS.API.INFO", "api.reply", "from-a".into())
        .await
        .expect("pub");
    b.publish_with_reply("$JS.API.INFO", "api.reply", "from-b".into())
        .await
        .expect("pub");
    let got_a = recv(&mut api_a).await;
    let got_b = recv(&mut api_b).await;
    assert_eq!(&got_a.payload[..], b"from-a");
    assert_eq!(&got_b.payload[..], b"from-b");
    assert!(api_a.try_recv().is_none(), "A's subscriber saw B's request");
    assert!(api_b.try_recv().is_none(), "B's subscriber saw A's request");
    assert!(in_a.has_interest("$JS.API.INFO") && in_b.has_interest("$JS.API.INFO"));
    assert!(!tb.broker.in_account("C").has_interest("$JS.API.INFO"));

    // Answers go to the reply subject in the handle's account only.
    in_b.publish("reply.x", None, None, "answer-b".into());
    in_a.publish("reply.x", None, None, "answer-a".into());
    let m = timeout(EVENTUALLY, inbox_b.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&m.payload[..], b"answer-b");
    let m = timeout(EVENTUALLY, inbox_a.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&m.payload[..], b"answer-a");
    // One more each, so a stray cross-account answer would have arrived first.
    in_a.publish("reply.x", None, None, "second-a".into());
    in_b.publish("reply.x", None, None, "second-b".into());
    let m = timeout(EVENTUALLY, inbox_a.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&m.payload[..], b"second-a");
    let m = timeout(EVENTUALLY, inbox_b.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&m.payload[..], b"second-b");
}
