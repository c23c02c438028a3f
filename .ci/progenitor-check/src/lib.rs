//! The client progenitor generates from the broker's OpenAPI 3.0 rendering
//! (see build.rs). Compiling is the check; nothing here runs.

include!(concat!(env!("OUT_DIR"), "/codegen.rs"));

/// Compiles only while the generated client has the document's named
/// types where they belong: one queue-name type for every path, one id
/// type for paths, queries and answers, the named variants of a redrive's
/// body, and the 3.0 document's own operation. A document that went back
/// to inline schemas would generate a type per operation and fail here.
#[allow(dead_code)]
async fn named_types_are_generated(
    client: &Client,
    queue: &types::QueueName,
    id: &types::EventId,
) -> Result<(), Error<types::ErrorBody>> {
    let all: types::IdsIn = types::IdsAll { all: Some(true) }.into();
    let some: types::IdsIn = types::IdsSome {
        ids: vec![id.clone()],
        all: None,
    }
    .into();
    let _: types::RedriveOut = client.redrive_dead_letters(queue, &all).await?.into_inner();
    let _: types::PurgeOut = client.purge_dead_letters(queue, &some).await?.into_inner();
    let _: types::BrowsedEvent = client.get_event(queue, id).await?.into_inner();
    let state = Some(types::EventState::Dead);
    let page = client
        .browse_events(queue, Some(id), None, None, state)
        .await?;
    let _: Option<&types::GroupName> = page.events.first().and_then(|e| e.group.as_ref());
    let _: Option<&types::Headers> = page.events.first().map(|e| &e.headers);
    let _: types::QueueList = client.list_queues().await?.into_inner();
    let _: types::SettleResults = client
        .ack_events(queue, &types::ReceiptsIn { receipts: vec![] })
        .await?
        .into_inner();
    client.openapi30().await?;
    Ok(())
}
