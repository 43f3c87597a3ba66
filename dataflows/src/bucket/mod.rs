//! Bucket I/O: listing, reading, copying and auditing blocks over any `ObjectStore`.
//!
//! Async I/O on the model's types; no timely. The dataflow above calls these functions from its
//! operators' tasks.
//!
//! - [`inventory`]: a bucket's block folders, metas, marks and objects, from one listing.
//! - [`meta_cache`]: the source's metas as a process remembers them across runs.
//! - [`listing`]: block folders, and the objects of one folder.
//! - [`read`]: a source block's meta.json, deletion mark and plan.
//! - [`copy`]: one object copied, verified, retried; the commit's re-check of a block.
//! - [`parts`]: a large object's upload part by part; by number, a failed part is sent again alone.
//! - [`server_side`]: copies the provider makes itself, between two prefixes or two buckets.
//! - [`bandwidth`]: the process's token buckets (`--bwlimit`).
//! - [`mark_source`]: move mode's deletion marks in the source.
//! - [`audit`]: `bucketflow verify`, one bucket's blocks checked.
//! - [`target`]: the target's visible blocks by group, as its compactor sees them.
//! - [`store`]: the store decorators the engine wraps around its stores.

pub(crate) mod audit;
pub(crate) mod bandwidth;
pub(crate) mod copy;
pub(crate) mod error;
pub(crate) mod inventory;
pub(crate) mod listing;
pub(crate) mod mark_source;
pub(crate) mod meta_cache;
pub(crate) mod mirror;
pub(crate) mod parts;
pub(crate) mod read;
pub(crate) mod server_side;
pub(crate) mod store;
pub(crate) mod target;
