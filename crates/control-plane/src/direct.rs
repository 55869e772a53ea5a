//! Calls straight into the control plane's services in-process: the same service
//! code and engine as every RPC, with the group taken as authenticated, and no
//! protobuf encoding, HTTP body, router or group proof. For the deterministic
//! simulation (`crates/sim`), whose thousands of schedules check the engine, not the
//! transport (the transport has its own tests). Answers and errors are those of the
//! typed calls of [`ControlPlaneClient`](infinistream_cp_client::ControlPlaneClient).

use std::sync::Arc;

use infinistream_cp_client::CallError;
use infinistream_cp_client::auth::AuthedGroup;
use infinistream_cp_client::calls::{answered, unary};
use infinistream_proto::v1::{self, consumers_server::Consumers, streams_server::Streams};
use tonic::Request;

use crate::service::Service;

/// A group's direct calls (see the module docs); made by `ControlPlane::direct`.
#[derive(Debug, Clone)]
pub struct DirectClient {
    pub(crate) service: Service,
    pub(crate) group: Arc<str>,
}

impl DirectClient {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .extensions_mut()
            .insert(AuthedGroup(self.group.clone()));
        request
    }

    pub async fn commit_batch(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CallError> {
        unary(
            "CommitBatch",
            self.service.commit_batch(self.request(request)),
        )
        .await
    }

    pub async fn stream_info(&self, name: &str) -> Result<v1::StreamInfoResponse, CallError> {
        let request = v1::StreamInfoRequest {
            name: name.to_owned(),
            deleted_details: false,
        };
        answered(
            "StreamInfo",
            self.service.stream_info(self.request(request)),
        )
        .await
    }

    pub async fn read_index(
        &self,
        request: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CallError> {
        answered("ReadIndex", self.service.read_index(self.request(request))).await
    }

    pub async fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<v1::ConsumerInfoResponse, CallError> {
        let request = v1::ConsumerInfoRequest {
            stream: stream.to_owned(),
            name: name.to_owned(),
        };
        answered(
            "ConsumerInfo",
            self.service.consumer_info(self.request(request)),
        )
        .await
    }

    pub async fn claim(&self, request: v1::ClaimRequest) -> Result<v1::ClaimResponse, CallError> {
        answered("Claim", self.service.claim(self.request(request))).await
    }

    pub async fn acknowledge(
        &self,
        request: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, CallError> {
        answered(
            "Acknowledge",
            self.service.acknowledge(self.request(request)),
        )
        .await
    }
}
