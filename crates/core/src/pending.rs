//! The answer to a write, once its records are durable.

use tokio::sync::oneshot;

use super::error::BrokerError;

/// A write's answer: ready at once, or sent when its log append completes.
/// Wait for it with [`Pending::wait`] on a plain thread or
/// [`Pending::result`] in async code.
#[derive(Debug)]
pub struct Pending<T>(Inner<T>);

#[derive(Debug)]
enum Inner<T> {
    Done(Result<T, BrokerError>),
    Waiting(oneshot::Receiver<Result<T, BrokerError>>),
}

impl<T> Pending<T> {
    pub(crate) fn done(result: Result<T, BrokerError>) -> Self {
        Pending(Inner::Done(result))
    }

    pub(crate) fn waiting(rx: oneshot::Receiver<Result<T, BrokerError>>) -> Self {
        Pending(Inner::Waiting(rx))
    }

    /// Blocks the thread until the answer is there. Not for async code.
    pub fn wait(self) -> Result<T, BrokerError> {
        match self.0 {
            Inner::Done(result) => result,
            Inner::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(BrokerError::Closed)),
        }
    }

    /// The answer, once it is there.
    pub async fn result(self) -> Result<T, BrokerError> {
        match self.0 {
            Inner::Done(result) => result,
            Inner::Waiting(rx) => rx.await.unwrap_or(Err(BrokerError::Closed)),
        }
    }
}
