mod common;

use common::broker::{event, TestBroker};
use event_broker_core::ReceiptStatus;

#[test]
fn enqueued_event_is_leased_acked_and_gone_after_restart() {
    let mut t = TestBroker::new();
    let id = t.enqueue("orders", event(r#"{"n": 1}"#));
    let got = t.lease("orders", 10);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].payload(), br#"{"n": 1}"#);
    assert_eq!(t.ack("orders", &got[0]), ReceiptStatus::Ok);
    assert_eq!(t.ack("orders", &got[0]), ReceiptStatus::LeaseLost);
    t.restart();
    assert!(t.lease("orders", 10).is_empty());
    let second = t.enqueue("orders", event("2"));
    assert!(second > id);
}
