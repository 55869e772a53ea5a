//! JetStream API plumbing shared by the agent's roles.
//!
//! - [`account`]: the account of a request and of a stream id (JetStream in several
//!   accounts).
//! - [`advisory`]: publishing `$JS.EVENT.ADVISORY.…` events.
//! - [`api`]: the `$JS.API.>` dispatcher, account info and stream administration;
//!   reads and consumers plug in as [`api::RouteHandler`]s from the roles that serve them.
//! - [`catalog`]: the agent's copy of the group's stream configs, kept fresh.
//! - [`convert`]: JetStream wire types ↔ control-plane messages.
//! - [`group_sync`]: a stream change answered once the group's agents serve it.
//! - [`forward`]: requests for a role this agent does not run, forwarded to a peer
//!   agent that runs it.
//! - [`jsz`]: the `/jsz` monitoring document, from the control plane and the API counters.
//! - [`sysapi`]: the NATS system API (`$SYS.REQ.*`) that operators' tools read.
//! - [`role`]: [`start`], the entry point that serves all of the above on an agent.

pub mod account;
pub mod advisory;
pub mod api;
pub mod catalog;
pub mod context;
pub mod convert;
pub mod forward;
pub mod group_sync;
pub mod jsz;
pub mod role;
pub mod sysapi;

pub use account::{JsAccount, stream_home, stream_name};
pub use api::{ApiContext, ApiServer, Reply, RouteHandler, RunningApi};
pub use catalog::{StreamCatalog, StreamEntry, serve_stream_subjects};
pub use jsz::JszSource;
pub use role::{ApiDeps, LocalRoutes, start, start_account};
pub use sysapi::{RunningSysApi, SysApi};
