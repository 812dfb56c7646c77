//! A value in force that is replaced whole (a reloaded configuration, a reloaded
//! plugin set), while each reader keeps the one it took for the length of its work.

use std::sync::{Arc, RwLock};

/// The value in force; [`InForce::replace`] swaps it, [`InForce::current`] hands out
/// the one in force now.
#[derive(Debug)]
pub struct InForce<T> {
    current: RwLock<Arc<T>>,
}

impl<T> InForce<T> {
    /// `value` in force.
    pub fn new(value: T) -> InForce<T> {
        InForce {
            current: RwLock::new(Arc::new(value)),
        }
    }

    /// The value in force now; holding it keeps it alive after a replacement.
    pub fn current(&self) -> Arc<T> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `value` in force.
    pub fn replace(&self, value: Arc<T>) {
        match self.current.write() {
            Ok(mut c) => *c = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}
