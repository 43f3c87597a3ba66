//! The block model: what a TSDB block is, and the pure rules over it.
//!
//! Data and parsing only: no I/O, no timely. Everything above (the bucket I/O, the dataflow)
//! builds on these types, and nothing here imports from above.
//!
//! - [`meta`]: `meta.json`, kept as the raw bytes beside the parsed form.
//! - [`block`]: a source block as the planner sees it, its objects and its paths.
//! - [`markers`]: deletion, no-compact and no-downsample marks.
//! - [`group`]: Thanos's compaction group key.
//! - [`layout`]: where blocks are (bucket root, or tenant folders).
//! - [`failure`]: why a block failed, and error chains.
//! - [`matcher`], [`timespec`], [`filter`]: the selection flags and the rules they make.
//! - [`mirror`]: what `--mirror` marks for deletion in the target, and its guard.
//! - [`strategy`]: which blocks share an ordered commit queue, and how many copies run at once.

pub(crate) mod block;
pub(crate) mod failure;
pub(crate) mod filter;
pub(crate) mod group;
pub(crate) mod held_meta;
pub(crate) mod layout;
pub(crate) mod markers;
pub(crate) mod matcher;
pub(crate) mod meta;
pub(crate) mod mirror;
pub(crate) mod strategy;
pub(crate) mod timespec;
