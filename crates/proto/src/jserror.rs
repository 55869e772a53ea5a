//! The control plane's JetStream errors ([`v1::JsError`]) are protocol's
//! [`ApiError`]s on the gRPC wire: built from nats-server's table on one side, and
//! forwarded unchanged to the client on the other.

use infinistream_protocol::jsapi::ApiError;

use crate::v1;

impl From<ApiError> for v1::JsError {
    fn from(e: ApiError) -> Self {
        v1::JsError {
            code: u32::from(e.code),
            err_code: u32::from(e.err_code),
            description: e.description,
        }
    }
}

impl From<&v1::JsError> for ApiError {
    /// A code outside nats-server's range (a broken peer) becomes an internal error
    /// that says what arrived.
    fn from(e: &v1::JsError) -> Self {
        match (u16::try_from(e.code), u16::try_from(e.err_code)) {
            (Ok(code), Ok(err_code)) => ApiError::new(code, err_code, e.description.clone()),
            _ => ApiError::internal(format_args!(
                "control plane sent an invalid error ({}, {}): {}",
                e.code, e.err_code, e.description
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = ApiError::stream_wrong_last_sequence(7);
        let wire = v1::JsError::from(e.clone());
        assert_eq!((wire.code, wire.err_code), (400, 10071));
        assert_eq!(ApiError::from(&wire), e);
        let broken = v1::JsError {
            code: 70_000,
            err_code: 1,
            description: "x".into(),
        };
        assert!(ApiError::from(&broken).is(infinistream_protocol::jsapi::codes::STREAM_GENERAL));
    }
}
