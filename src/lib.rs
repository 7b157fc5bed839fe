//! wip
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod identity;
pub mod store;

pub use identity::{Identity, IdentityExtractor};

/// placeholder
#[derive(Debug)]
pub struct SessionBindingLayer;
