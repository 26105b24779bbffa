//! Everything about tokens: claims, keys, the stateless codec, the token
//! store and the stateful service on top of them.

pub(crate) mod claims;
pub(crate) mod feed;
pub(crate) mod jwt;
pub(crate) mod key_file;
pub(crate) mod keys;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod view;
