//! The handlers of one consumer group, as the spec's `registerEventHandlers` registers
//! them.

use std::sync::Arc;

use ltf_schemas::EventType;

use crate::Handler;

/// A consumer group's handlers, in registration order. Every event goes to each handler
/// whose [`Handler::can_handle`] accepts its type; an event no handler wants is
/// acknowledged and counted as ignored.
#[derive(Clone, Default)]
pub struct Router {
    handlers: Vec<Arc<dyn Handler>>,
    /// Each handler's name, in the same order, shared by the contexts of its calls.
    names: Vec<Arc<str>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.iter().map(|h| h.name())).finish()
    }
}

impl Router {
    /// A router with no handler.
    pub fn new() -> Router {
        Router::default()
    }

    /// Registers `handler` (one line per handler).
    pub fn register(mut self, handler: impl Handler) -> Router {
        self.names.push(handler.name().into());
        self.handlers.push(Arc::new(handler));
        self
    }

    /// The handlers that want events of `event_type`, in registration order.
    pub fn handlers_for(&self, event_type: EventType) -> Vec<Arc<dyn Handler>> {
        self.handlers.iter().filter(|h| h.can_handle(event_type)).cloned().collect()
    }

    /// Every registered handler.
    pub fn handlers(&self) -> &[Arc<dyn Handler>] {
        &self.handlers
    }

    /// Every registered handler with its name (shared).
    pub(crate) fn named(&self) -> impl Iterator<Item = (&Arc<dyn Handler>, &Arc<str>)> {
        self.handlers.iter().zip(&self.names)
    }
}
