// Generated from nats-server's `server/errors.json` (2.15 line) by
// crates/protocol/tests/jsapi_golden/gen_error_codes.py; do not edit by hand.
// Each entry keeps nats-server's HTTP-ish code, JetStream error code and description
// template; constructors substitute `{placeholder}`s exactly as nats-server does.

use super::{ApiError, ErrorCode};
use std::fmt::Display;

/// Every error nats-server can put in a JetStream API response, by its `errors.json` constant.
#[allow(missing_docs)]
pub mod codes {
    use super::ErrorCode;
    /// `JSAccountResourcesExceededErr`: 400 / 10002.
    pub const ACCOUNT_RESOURCES_EXCEEDED: ErrorCode = ErrorCode {
        name: "JSAccountResourcesExceededErr",
        code: 400,
        err_code: 10002,
        description: "resource limits exceeded for account",
    };
    /// `JSBadRequestErr`: 400 / 10003.
    pub const BAD_REQUEST: ErrorCode = ErrorCode {
        name: "JSBadRequestErr",
        code: 400,
        err_code: 10003,
        description: "bad request",
    };
    /// `JSClusterIncompleteErr`: 503 / 10004.
    pub const CLUSTER_INCOMPLETE: ErrorCode = ErrorCode {
        name: "JSClusterIncompleteErr",
        code: 503,
        err_code: 10004,
        description: "incomplete results",
    };
    /// `JSClusterNoPeersErrF`: 400 / 10005.
    pub const CLUSTER_NO_PEERS: ErrorCode = ErrorCode {
        name: "JSClusterNoPeersErrF",
        code: 400,
        err_code: 10005,
        description: "{err}",
    };
    /// `JSClusterNotActiveErr`: 500 / 10006.
    pub const CLUSTER_NOT_ACTIVE: ErrorCode = ErrorCode {
        name: "JSClusterNotActiveErr",
        code: 500,
        err_code: 10006,
        description: "JetStream not in clustered mode",
    };
    /// `JSClusterNotAssignedErr`: 500 / 10007.
    pub const CLUSTER_NOT_ASSIGNED: ErrorCode = ErrorCode {
        name: "JSClusterNotAssignedErr",
        code: 500,
        err_code: 10007,
        description: "JetStream cluster not assigned to this server",
    };
    /// `JSClusterNotAvailErr`: 503 / 10008.
    pub const CLUSTER_NOT_AVAIL: ErrorCode = ErrorCode {
        name: "JSClusterNotAvailErr",
        code: 503,
        err_code: 10008,
        description: "JetStream system temporarily unavailable",
    };
    /// `JSClusterNotLeaderErr`: 500 / 10009.
    pub const CLUSTER_NOT_LEADER: ErrorCode = ErrorCode {
        name: "JSClusterNotLeaderErr",
        code: 500,
        err_code: 10009,
        description: "JetStream cluster can not handle request",
    };
    /// `JSClusterRequiredErr`: 503 / 10010.
    pub const CLUSTER_REQUIRED: ErrorCode = ErrorCode {
        name: "JSClusterRequiredErr",
        code: 503,
        err_code: 10010,
        description: "JetStream clustering support required",
    };
    /// `JSClusterTagsErr`: 400 / 10011.
    pub const CLUSTER_TAGS: ErrorCode = ErrorCode {
        name: "JSClusterTagsErr",
        code: 400,
        err_code: 10011,
        description: "tags placement not supported for operation",
    };
    /// `JSConsumerCreateErrF`: 500 / 10012.
    pub const CONSUMER_CREATE: ErrorCode = ErrorCode {
        name: "JSConsumerCreateErrF",
        code: 500,
        err_code: 10012,
        description: "{err}",
    };
    /// `JSConsumerNameExistErr`: 400 / 10013.
    pub const CONSUMER_NAME_EXIST: ErrorCode = ErrorCode {
        name: "JSConsumerNameExistErr",
        code: 400,
        err_code: 10013,
        description: "consumer name already in use",
    };
    /// `JSConsumerNotFoundErr`: 404 / 10014.
    pub const CONSUMER_NOT_FOUND: ErrorCode = ErrorCode {
        name: "JSConsumerNotFoundErr",
        code: 404,
        err_code: 10014,
        description: "consumer not found",
    };
    /// `JSSnapshotDeliverSubjectInvalidErr`: 400 / 10015.
    pub const SNAPSHOT_DELIVER_SUBJECT_INVALID: ErrorCode = ErrorCode {
        name: "JSSnapshotDeliverSubjectInvalidErr",
        code: 400,
        err_code: 10015,
        description: "deliver subject not valid",
    };
    /// `JSConsumerDurableNameNotInSubjectErr`: 400 / 10016.
    pub const CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT: ErrorCode = ErrorCode {
        name: "JSConsumerDurableNameNotInSubjectErr",
        code: 400,
        err_code: 10016,
        description: "consumer expected to be durable but no durable name set in subject",
    };
    /// `JSConsumerDurableNameNotMatchSubjectErr`: 400 / 10017.
    pub const CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT: ErrorCode = ErrorCode {
        name: "JSConsumerDurableNameNotMatchSubjectErr",
        code: 400,
        err_code: 10017,
        description: "consumer name in subject does not match durable name in request",
    };
    /// `JSConsumerDurableNameNotSetErr`: 400 / 10018.
    pub const CONSUMER_DURABLE_NAME_NOT_SET: ErrorCode = ErrorCode {
        name: "JSConsumerDurableNameNotSetErr",
        code: 400,
        err_code: 10018,
        description: "consumer expected to be durable but a durable name was not set",
    };
    /// `JSConsumerEphemeralWithDurableInSubjectErr`: 400 / 10019.
    pub const CONSUMER_EPHEMERAL_WITH_DURABLE_IN_SUBJECT: ErrorCode = ErrorCode {
        name: "JSConsumerEphemeralWithDurableInSubjectErr",
        code: 400,
        err_code: 10019,
        description: "consumer expected to be ephemeral but detected a durable name set in subject",
    };
    /// `JSConsumerEphemeralWithDurableNameErr`: 400 / 10020.
    pub const CONSUMER_EPHEMERAL_WITH_DURABLE_NAME: ErrorCode = ErrorCode {
        name: "JSConsumerEphemeralWithDurableNameErr",
        code: 400,
        err_code: 10020,
        description: "consumer expected to be ephemeral but a durable name was set in request",
    };
    /// `JSStreamExternalApiOverlapErrF`: 400 / 10021.
    pub const STREAM_EXTERNAL_API_OVERLAP: ErrorCode = ErrorCode {
        name: "JSStreamExternalApiOverlapErrF",
        code: 400,
        err_code: 10021,
        description: "stream external api prefix {prefix} must not overlap with {subject}",
    };
    /// `JSStreamExternalDelPrefixOverlapsErrF`: 400 / 10022.
    pub const STREAM_EXTERNAL_DEL_PREFIX_OVERLAPS: ErrorCode = ErrorCode {
        name: "JSStreamExternalDelPrefixOverlapsErrF",
        code: 400,
        err_code: 10022,
        description: "stream external delivery prefix {prefix} overlaps with stream subject {subject}",
    };
    /// `JSInsufficientResourcesErr`: 503 / 10023.
    pub const INSUFFICIENT_RESOURCES: ErrorCode = ErrorCode {
        name: "JSInsufficientResourcesErr",
        code: 503,
        err_code: 10023,
        description: "insufficient resources",
    };
    /// `JSStreamInvalidExternalDeliverySubjErrF`: 400 / 10024.
    pub const STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ: ErrorCode = ErrorCode {
        name: "JSStreamInvalidExternalDeliverySubjErrF",
        code: 400,
        err_code: 10024,
        description: "stream external delivery prefix {prefix} must not contain wildcards",
    };
    /// `JSInvalidJSONErr`: 400 / 10025.
    pub const INVALID_JSON: ErrorCode = ErrorCode {
        name: "JSInvalidJSONErr",
        code: 400,
        err_code: 10025,
        description: "invalid JSON: {err}",
    };
    /// `JSMaximumConsumersLimitErr`: 400 / 10026.
    pub const MAXIMUM_CONSUMERS_LIMIT: ErrorCode = ErrorCode {
        name: "JSMaximumConsumersLimitErr",
        code: 400,
        err_code: 10026,
        description: "maximum consumers limit reached",
    };
    /// `JSMaximumStreamsLimitErr`: 400 / 10027.
    pub const MAXIMUM_STREAMS_LIMIT: ErrorCode = ErrorCode {
        name: "JSMaximumStreamsLimitErr",
        code: 400,
        err_code: 10027,
        description: "maximum number of streams reached",
    };
    /// `JSMemoryResourcesExceededErr`: 500 / 10028.
    pub const MEMORY_RESOURCES_EXCEEDED: ErrorCode = ErrorCode {
        name: "JSMemoryResourcesExceededErr",
        code: 500,
        err_code: 10028,
        description: "insufficient memory resources available",
    };
    /// `JSMirrorConsumerSetupFailedErrF`: 500 / 10029.
    pub const MIRROR_CONSUMER_SETUP_FAILED: ErrorCode = ErrorCode {
        name: "JSMirrorConsumerSetupFailedErrF",
        code: 500,
        err_code: 10029,
        description: "{err}",
    };
    /// `JSMirrorMaxMessageSizeTooBigErr`: 400 / 10030.
    pub const MIRROR_MAX_MESSAGE_SIZE_TOO_BIG: ErrorCode = ErrorCode {
        name: "JSMirrorMaxMessageSizeTooBigErr",
        code: 400,
        err_code: 10030,
        description: "stream mirror must have max message size >= source",
    };
    /// `JSMirrorWithSourcesErr`: 400 / 10031.
    pub const MIRROR_WITH_SOURCES: ErrorCode = ErrorCode {
        name: "JSMirrorWithSourcesErr",
        code: 400,
        err_code: 10031,
        description: "stream mirrors can not also contain other sources",
    };
    /// `JSMirrorWithStartSeqAndTimeErr`: 400 / 10032.
    pub const MIRROR_WITH_START_SEQ_AND_TIME: ErrorCode = ErrorCode {
        name: "JSMirrorWithStartSeqAndTimeErr",
        code: 400,
        err_code: 10032,
        description: "stream mirrors can not have both start seq and start time configured",
    };
    /// `JSMirrorWithSubjectFiltersErr`: 400 / 10033.
    pub const MIRROR_WITH_SUBJECT_FILTERS: ErrorCode = ErrorCode {
        name: "JSMirrorWithSubjectFiltersErr",
        code: 400,
        err_code: 10033,
        description: "stream mirrors can not contain filtered subjects",
    };
    /// `JSMirrorWithSubjectsErr`: 400 / 10034.
    pub const MIRROR_WITH_SUBJECTS: ErrorCode = ErrorCode {
        name: "JSMirrorWithSubjectsErr",
        code: 400,
        err_code: 10034,
        description: "stream mirrors can not contain subjects",
    };
    /// `JSNoAccountErr`: 503 / 10035.
    pub const NO_ACCOUNT: ErrorCode = ErrorCode {
        name: "JSNoAccountErr",
        code: 503,
        err_code: 10035,
        description: "account not found",
    };
    /// `JSClusterUnSupportFeatureErr`: 503 / 10036.
    pub const CLUSTER_UN_SUPPORT_FEATURE: ErrorCode = ErrorCode {
        name: "JSClusterUnSupportFeatureErr",
        code: 503,
        err_code: 10036,
        description: "not currently supported in clustered mode",
    };
    /// `JSNoMessageFoundErr`: 404 / 10037.
    pub const NO_MESSAGE_FOUND: ErrorCode = ErrorCode {
        name: "JSNoMessageFoundErr",
        code: 404,
        err_code: 10037,
        description: "no message found",
    };
    /// `JSNotEmptyRequestErr`: 400 / 10038.
    pub const NOT_EMPTY_REQUEST: ErrorCode = ErrorCode {
        name: "JSNotEmptyRequestErr",
        code: 400,
        err_code: 10038,
        description: "expected an empty request payload",
    };
    /// `JSNotEnabledForAccountErr`: 503 / 10039.
    pub const NOT_ENABLED_FOR_ACCOUNT: ErrorCode = ErrorCode {
        name: "JSNotEnabledForAccountErr",
        code: 503,
        err_code: 10039,
        description: "JetStream not enabled for account",
    };
    /// `JSClusterPeerNotMemberErr`: 400 / 10040.
    pub const CLUSTER_PEER_NOT_MEMBER: ErrorCode = ErrorCode {
        name: "JSClusterPeerNotMemberErr",
        code: 400,
        err_code: 10040,
        description: "peer not a member",
    };
    /// `JSRaftGeneralErrF`: 500 / 10041.
    pub const RAFT_GENERAL: ErrorCode = ErrorCode {
        name: "JSRaftGeneralErrF",
        code: 500,
        err_code: 10041,
        description: "{err}",
    };
    /// `JSRestoreSubscribeFailedErrF`: 500 / 10042.
    pub const RESTORE_SUBSCRIBE_FAILED: ErrorCode = ErrorCode {
        name: "JSRestoreSubscribeFailedErrF",
        code: 500,
        err_code: 10042,
        description: "JetStream unable to subscribe to restore snapshot {subject}: {err}",
    };
    /// `JSSequenceNotFoundErrF`: 400 / 10043.
    pub const SEQUENCE_NOT_FOUND: ErrorCode = ErrorCode {
        name: "JSSequenceNotFoundErrF",
        code: 400,
        err_code: 10043,
        description: "sequence {seq} not found",
    };
    /// `JSClusterServerNotMemberErr`: 400 / 10044.
    pub const CLUSTER_SERVER_NOT_MEMBER: ErrorCode = ErrorCode {
        name: "JSClusterServerNotMemberErr",
        code: 400,
        err_code: 10044,
        description: "server is not a member of the cluster",
    };
    /// `JSSourceConsumerSetupFailedErrF`: 500 / 10045.
    pub const SOURCE_CONSUMER_SETUP_FAILED: ErrorCode = ErrorCode {
        name: "JSSourceConsumerSetupFailedErrF",
        code: 500,
        err_code: 10045,
        description: "{err}",
    };
    /// `JSSourceMaxMessageSizeTooBigErr`: 400 / 10046.
    pub const SOURCE_MAX_MESSAGE_SIZE_TOO_BIG: ErrorCode = ErrorCode {
        name: "JSSourceMaxMessageSizeTooBigErr",
        code: 400,
        err_code: 10046,
        description: "stream source must have max message size >= target",
    };
    /// `JSStorageResourcesExceededErr`: 500 / 10047.
    pub const STORAGE_RESOURCES_EXCEEDED: ErrorCode = ErrorCode {
        name: "JSStorageResourcesExceededErr",
        code: 500,
        err_code: 10047,
        description: "insufficient storage resources available",
    };
    /// `JSStreamAssignmentErrF`: 500 / 10048.
    pub const STREAM_ASSIGNMENT: ErrorCode = ErrorCode {
        name: "JSStreamAssignmentErrF",
        code: 500,
        err_code: 10048,
        description: "{err}",
    };
    /// `JSStreamCreateErrF`: 500 / 10049.
    pub const STREAM_CREATE: ErrorCode = ErrorCode {
        name: "JSStreamCreateErrF",
        code: 500,
        err_code: 10049,
        description: "{err}",
    };
    /// `JSStreamDeleteErrF`: 500 / 10050.
    pub const STREAM_DELETE: ErrorCode = ErrorCode {
        name: "JSStreamDeleteErrF",
        code: 500,
        err_code: 10050,
        description: "{err}",
    };
    /// `JSStreamGeneralErrorF`: 500 / 10051.
    pub const STREAM_GENERAL: ErrorCode = ErrorCode {
        name: "JSStreamGeneralErrorF",
        code: 500,
        err_code: 10051,
        description: "{err}",
    };
    /// `JSStreamInvalidConfigF`: 500 / 10052.
    pub const STREAM_INVALID_CONFIG: ErrorCode = ErrorCode {
        name: "JSStreamInvalidConfigF",
        code: 500,
        err_code: 10052,
        description: "{err}",
    };
    /// `JSStreamLimitsErrF`: 500 / 10053.
    pub const STREAM_LIMITS: ErrorCode = ErrorCode {
        name: "JSStreamLimitsErrF",
        code: 500,
        err_code: 10053,
        description: "{err}",
    };
    /// `JSStreamMessageExceedsMaximumErr`: 400 / 10054.
    pub const STREAM_MESSAGE_EXCEEDS_MAXIMUM: ErrorCode = ErrorCode {
        name: "JSStreamMessageExceedsMaximumErr",
        code: 400,
        err_code: 10054,
        description: "message size exceeds maximum allowed",
    };
    /// `JSStreamMirrorNotUpdatableErr`: 400 / 10055.
    pub const STREAM_MIRROR_NOT_UPDATABLE: ErrorCode = ErrorCode {
        name: "JSStreamMirrorNotUpdatableErr",
        code: 400,
        err_code: 10055,
        description: "stream mirror configuration can not be updated",
    };
    /// `JSStreamMismatchErr`: 400 / 10056.
    pub const STREAM_MISMATCH: ErrorCode = ErrorCode {
        name: "JSStreamMismatchErr",
        code: 400,
        err_code: 10056,
        description: "stream name in subject does not match request",
    };
    /// `JSStreamMsgDeleteFailedF`: 500 / 10057.
    pub const STREAM_MSG_DELETE_FAILED: ErrorCode = ErrorCode {
        name: "JSStreamMsgDeleteFailedF",
        code: 500,
        err_code: 10057,
        description: "{err}",
    };
    /// `JSStreamNameExistErr`: 400 / 10058.
    pub const STREAM_NAME_EXIST: ErrorCode = ErrorCode {
        name: "JSStreamNameExistErr",
        code: 400,
        err_code: 10058,
        description: "stream name already in use with a different configuration",
    };
    /// `JSStreamNotFoundErr`: 404 / 10059.
    pub const STREAM_NOT_FOUND: ErrorCode = ErrorCode {
        name: "JSStreamNotFoundErr",
        code: 404,
        err_code: 10059,
        description: "stream not found",
    };
    /// `JSStreamNotMatchErr`: 400 / 10060.
    pub const STREAM_NOT_MATCH: ErrorCode = ErrorCode {
        name: "JSStreamNotMatchErr",
        code: 400,
        err_code: 10060,
        description: "expected stream does not match",
    };
    /// `JSStreamReplicasNotUpdatableErr`: 400 / 10061.
    pub const STREAM_REPLICAS_NOT_UPDATABLE: ErrorCode = ErrorCode {
        name: "JSStreamReplicasNotUpdatableErr",
        code: 400,
        err_code: 10061,
        description: "Replicas configuration can not be updated",
    };
    /// `JSStreamRestoreErrF`: 500 / 10062.
    pub const STREAM_RESTORE: ErrorCode = ErrorCode {
        name: "JSStreamRestoreErrF",
        code: 500,
        err_code: 10062,
        description: "restore failed: {err}",
    };
    /// `JSStreamSequenceNotMatchErr`: 503 / 10063.
    pub const STREAM_SEQUENCE_NOT_MATCH: ErrorCode = ErrorCode {
        name: "JSStreamSequenceNotMatchErr",
        code: 503,
        err_code: 10063,
        description: "expected stream sequence does not match",
    };
    /// `JSStreamSnapshotErrF`: 500 / 10064.
    pub const STREAM_SNAPSHOT: ErrorCode = ErrorCode {
        name: "JSStreamSnapshotErrF",
        code: 500,
        err_code: 10064,
        description: "snapshot failed: {err}",
    };
    /// `JSStreamSubjectOverlapErr`: 400 / 10065.
    pub const STREAM_SUBJECT_OVERLAP: ErrorCode = ErrorCode {
        name: "JSStreamSubjectOverlapErr",
        code: 400,
        err_code: 10065,
        description: "subjects overlap with an existing stream",
    };
    /// `JSStreamTemplateCreateErrF`: 500 / 10066.
    pub const STREAM_TEMPLATE_CREATE: ErrorCode = ErrorCode {
        name: "JSStreamTemplateCreateErrF",
        code: 500,
        err_code: 10066,
        description: "{err}",
    };
    /// `JSStreamTemplateDeleteErrF`: 500 / 10067.
    pub const STREAM_TEMPLATE_DELETE: ErrorCode = ErrorCode {
        name: "JSStreamTemplateDeleteErrF",
        code: 500,
        err_code: 10067,
        description: "{err}",
    };
    /// `JSStreamTemplateNotFoundErr`: 404 / 10068.
    pub const STREAM_TEMPLATE_NOT_FOUND: ErrorCode = ErrorCode {
        name: "JSStreamTemplateNotFoundErr",
        code: 404,
        err_code: 10068,
        description: "template not found",
    };
    /// `JSStreamUpdateErrF`: 500 / 10069.
    pub const STREAM_UPDATE: ErrorCode = ErrorCode {
        name: "JSStreamUpdateErrF",
        code: 500,
        err_code: 10069,
        description: "{err}",
    };
    /// `JSStreamWrongLastMsgIDErrF`: 400 / 10070.
    pub const STREAM_WRONG_LAST_MSG_ID: ErrorCode = ErrorCode {
        name: "JSStreamWrongLastMsgIDErrF",
        code: 400,
        err_code: 10070,
        description: "wrong last msg ID: {id}",
    };
    /// `JSStreamWrongLastSequenceErrF`: 400 / 10071.
    pub const STREAM_WRONG_LAST_SEQUENCE: ErrorCode = ErrorCode {
        name: "JSStreamWrongLastSequenceErrF",
        code: 400,
        err_code: 10071,
        description: "wrong last sequence: {seq}",
    };
    /// `JSTempStorageFailedErr`: 500 / 10072.
    pub const TEMP_STORAGE_FAILED: ErrorCode = ErrorCode {
        name: "JSTempStorageFailedErr",
        code: 500,
        err_code: 10072,
        description: "JetStream unable to open temp storage for restore",
    };
    /// `JSTemplateNameNotMatchSubjectErr`: 400 / 10073.
    pub const TEMPLATE_NAME_NOT_MATCH_SUBJECT: ErrorCode = ErrorCode {
        name: "JSTemplateNameNotMatchSubjectErr",
        code: 400,
        err_code: 10073,
        description: "template name in subject does not match request",
    };
    /// `JSStreamReplicasNotSupportedErr`: 500 / 10074.
    pub const STREAM_REPLICAS_NOT_SUPPORTED: ErrorCode = ErrorCode {
        name: "JSStreamReplicasNotSupportedErr",
        code: 500,
        err_code: 10074,
        description: "replicas > 1 not supported in non-clustered mode",
    };
    /// `JSPeerRemapErr`: 503 / 10075.
    pub const PEER_REMAP: ErrorCode = ErrorCode {
        name: "JSPeerRemapErr",
        code: 503,
        err_code: 10075,
        description: "peer remap failed",
    };
    /// `JSNotEnabledErr`: 503 / 10076.
    pub const NOT_ENABLED: ErrorCode = ErrorCode {
        name: "JSNotEnabledErr",
        code: 503,
        err_code: 10076,
        description: "JetStream not enabled",
    };
    /// `JSStreamStoreFailedF`: 503 / 10077.
    pub const STREAM_STORE_FAILED: ErrorCode = ErrorCode {
        name: "JSStreamStoreFailedF",
        code: 503,
        err_code: 10077,
        description: "{err}",
    };
    /// `JSConsumerConfigRequiredErr`: 400 / 10078.
    pub const CONSUMER_CONFIG_REQUIRED: ErrorCode = ErrorCode {
        name: "JSConsumerConfigRequiredErr",
        code: 400,
        err_code: 10078,
        description: "consumer config required",
    };
    /// `JSConsumerDeliverToWildcardsErr`: 400 / 10079.
    pub const CONSUMER_DELIVER_TO_WILDCARDS: ErrorCode = ErrorCode {
        name: "JSConsumerDeliverToWildcardsErr",
        code: 400,
        err_code: 10079,
        description: "consumer deliver subject has wildcards",
    };
    /// `JSConsumerPushMaxWaitingErr`: 400 / 10080.
    pub const CONSUMER_PUSH_MAX_WAITING: ErrorCode = ErrorCode {
        name: "JSConsumerPushMaxWaitingErr",
        code: 400,
        err_code: 10080,
        description: "consumer in push mode can not set max waiting",
    };
    /// `JSConsumerDeliverCycleErr`: 400 / 10081.
    pub const CONSUMER_DELIVER_CYCLE: ErrorCode = ErrorCode {
        name: "JSConsumerDeliverCycleErr",
        code: 400,
        err_code: 10081,
        description: "consumer deliver subject forms a cycle",
    };
    /// `JSConsumerMaxPendingAckPolicyRequiredErr`: 400 / 10082.
    pub const CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED: ErrorCode = ErrorCode {
        name: "JSConsumerMaxPendingAckPolicyRequiredErr",
        code: 400,
        err_code: 10082,
        description: "consumer requires ack policy for max ack pending",
    };
    /// `JSConsumerSmallHeartbeatErr`: 400 / 10083.
    pub const CONSUMER_SMALL_HEARTBEAT: ErrorCode = ErrorCode {
        name: "JSConsumerSmallHeartbeatErr",
        code: 400,
        err_code: 10083,
        description: "consumer idle heartbeat needs to be >= 100ms",
    };
    /// `JSConsumerPullRequiresAckErr`: 400 / 10084.
    pub const CONSUMER_PULL_REQUIRES_ACK: ErrorCode = ErrorCode {
        name: "JSConsumerPullRequiresAckErr",
        code: 400,
        err_code: 10084,
        description: "consumer in pull mode requires explicit ack policy on workqueue stream",
    };
    /// `JSConsumerPullNotDurableErr`: 400 / 10085.
    pub const CONSUMER_PULL_NOT_DURABLE: ErrorCode = ErrorCode {
        name: "JSConsumerPullNotDurableErr",
        code: 400,
        err_code: 10085,
        description: "consumer in pull mode requires a durable name",
    };
    /// `JSConsumerPullWithRateLimitErr`: 400 / 10086.
    pub const CONSUMER_PULL_WITH_RATE_LIMIT: ErrorCode = ErrorCode {
        name: "JSConsumerPullWithRateLimitErr",
        code: 400,
        err_code: 10086,
        description: "consumer in pull mode can not have rate limit set",
    };
    /// `JSConsumerMaxWaitingNegativeErr`: 400 / 10087.
    pub const CONSUMER_MAX_WAITING_NEGATIVE: ErrorCode = ErrorCode {
        name: "JSConsumerMaxWaitingNegativeErr",
        code: 400,
        err_code: 10087,
        description: "consumer max waiting needs to be positive",
    };
    /// `JSConsumerHBRequiresPushErr`: 400 / 10088.
    pub const CONSUMER_HB_REQUIRES_PUSH: ErrorCode = ErrorCode {
        name: "JSConsumerHBRequiresPushErr",
        code: 400,
        err_code: 10088,
        description: "consumer idle heartbeat requires a push based consumer",
    };
    /// `JSConsumerFCRequiresPushErr`: 400 / 10089.
    pub const CONSUMER_FC_REQUIRES_PUSH: ErrorCode = ErrorCode {
        name: "JSConsumerFCRequiresPushErr",
        code: 400,
        err_code: 10089,
        description: "consumer flow control requires a push based consumer",
    };
    /// `JSConsumerDirectRequiresPushErr`: 400 / 10090.
    pub const CONSUMER_DIRECT_REQUIRES_PUSH: ErrorCode = ErrorCode {
        name: "JSConsumerDirectRequiresPushErr",
        code: 400,
        err_code: 10090,
        description: "consumer direct requires a push based consumer",
    };
    /// `JSConsumerDirectRequiresEphemeralErr`: 400 / 10091.
    pub const CONSUMER_DIRECT_REQUIRES_EPHEMERAL: ErrorCode = ErrorCode {
        name: "JSConsumerDirectRequiresEphemeralErr",
        code: 400,
        err_code: 10091,
        description: "consumer direct requires an ephemeral consumer",
    };
    /// `JSConsumerOnMappedErr`: 400 / 10092.
    pub const CONSUMER_ON_MAPPED: ErrorCode = ErrorCode {
        name: "JSConsumerOnMappedErr",
        code: 400,
        err_code: 10092,
        description: "consumer direct on a mapped consumer",
    };
    /// `JSConsumerFilterNotSubsetErr`: 400 / 10093.
    pub const CONSUMER_FILTER_NOT_SUBSET: ErrorCode = ErrorCode {
        name: "JSConsumerFilterNotSubsetErr",
        code: 400,
        err_code: 10093,
        description: "consumer filter subject is not a valid subset of the interest subjects",
    };
    /// `JSConsumerInvalidPolicyErrF`: 400 / 10094.
    pub const CONSUMER_INVALID_POLICY: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidPolicyErrF",
        code: 400,
        err_code: 10094,
        description: "{err}",
    };
    /// `JSConsumerInvalidSamplingErrF`: 400 / 10095.
    pub const CONSUMER_INVALID_SAMPLING: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidSamplingErrF",
        code: 400,
        err_code: 10095,
        description: "failed to parse consumer sampling configuration: {err}",
    };
    /// `JSStreamInvalidErr`: 500 / 10096.
    pub const STREAM_INVALID: ErrorCode = ErrorCode {
        name: "JSStreamInvalidErr",
        code: 500,
        err_code: 10096,
        description: "stream not valid",
    };
    /// `JSStreamHeaderExceedsMaximumErr`: 400 / 10097.
    pub const STREAM_HEADER_EXCEEDS_MAXIMUM: ErrorCode = ErrorCode {
        name: "JSStreamHeaderExceedsMaximumErr",
        code: 400,
        err_code: 10097,
        description: "header size exceeds maximum allowed of 64k",
    };
    /// `JSConsumerWQRequiresExplicitAckErr`: 400 / 10098.
    pub const CONSUMER_WQ_REQUIRES_EXPLICIT_ACK: ErrorCode = ErrorCode {
        name: "JSConsumerWQRequiresExplicitAckErr",
        code: 400,
        err_code: 10098,
        description: "workqueue stream requires explicit ack",
    };
    /// `JSConsumerWQMultipleUnfilteredErr`: 400 / 10099.
    pub const CONSUMER_WQ_MULTIPLE_UNFILTERED: ErrorCode = ErrorCode {
        name: "JSConsumerWQMultipleUnfilteredErr",
        code: 400,
        err_code: 10099,
        description: "multiple non-filtered consumers not allowed on workqueue stream",
    };
    /// `JSConsumerWQConsumerNotUniqueErr`: 400 / 10100.
    pub const CONSUMER_WQ_CONSUMER_NOT_UNIQUE: ErrorCode = ErrorCode {
        name: "JSConsumerWQConsumerNotUniqueErr",
        code: 400,
        err_code: 10100,
        description: "filtered consumer not unique on workqueue stream",
    };
    /// `JSConsumerWQConsumerNotDeliverAllErr`: 400 / 10101.
    pub const CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL: ErrorCode = ErrorCode {
        name: "JSConsumerWQConsumerNotDeliverAllErr",
        code: 400,
        err_code: 10101,
        description: "consumer must be deliver all on workqueue stream",
    };
    /// `JSConsumerNameTooLongErrF`: 400 / 10102.
    pub const CONSUMER_NAME_TOO_LONG: ErrorCode = ErrorCode {
        name: "JSConsumerNameTooLongErrF",
        code: 400,
        err_code: 10102,
        description: "consumer name is too long, maximum allowed is {max}",
    };
    /// `JSConsumerBadDurableNameErr`: 400 / 10103.
    pub const CONSUMER_BAD_DURABLE_NAME: ErrorCode = ErrorCode {
        name: "JSConsumerBadDurableNameErr",
        code: 400,
        err_code: 10103,
        description: "durable name can not contain '.', '*', '>'",
    };
    /// `JSConsumerStoreFailedErrF`: 500 / 10104.
    pub const CONSUMER_STORE_FAILED: ErrorCode = ErrorCode {
        name: "JSConsumerStoreFailedErrF",
        code: 500,
        err_code: 10104,
        description: "error creating store for consumer: {err}",
    };
    /// `JSConsumerExistingActiveErr`: 400 / 10105.
    pub const CONSUMER_EXISTING_ACTIVE: ErrorCode = ErrorCode {
        name: "JSConsumerExistingActiveErr",
        code: 400,
        err_code: 10105,
        description: "consumer already exists and is still active",
    };
    /// `JSConsumerReplacementWithDifferentNameErr`: 400 / 10106.
    pub const CONSUMER_REPLACEMENT_WITH_DIFFERENT_NAME: ErrorCode = ErrorCode {
        name: "JSConsumerReplacementWithDifferentNameErr",
        code: 400,
        err_code: 10106,
        description: "consumer replacement durable config not the same",
    };
    /// `JSConsumerDescriptionTooLongErrF`: 400 / 10107.
    pub const CONSUMER_DESCRIPTION_TOO_LONG: ErrorCode = ErrorCode {
        name: "JSConsumerDescriptionTooLongErrF",
        code: 400,
        err_code: 10107,
        description: "consumer description is too long, maximum allowed is {max}",
    };
    /// `JSConsumerWithFlowControlNeedsHeartbeats`: 400 / 10108.
    pub const CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS: ErrorCode = ErrorCode {
        name: "JSConsumerWithFlowControlNeedsHeartbeats",
        code: 400,
        err_code: 10108,
        description: "consumer with flow control also needs heartbeats",
    };
    /// `JSStreamSealedErr`: 400 / 10109.
    pub const STREAM_SEALED: ErrorCode = ErrorCode {
        name: "JSStreamSealedErr",
        code: 400,
        err_code: 10109,
        description: "invalid operation on sealed stream",
    };
    /// `JSStreamPurgeFailedF`: 500 / 10110.
    pub const STREAM_PURGE_FAILED: ErrorCode = ErrorCode {
        name: "JSStreamPurgeFailedF",
        code: 500,
        err_code: 10110,
        description: "{err}",
    };
    /// `JSStreamRollupFailedF`: 500 / 10111.
    pub const STREAM_ROLLUP_FAILED: ErrorCode = ErrorCode {
        name: "JSStreamRollupFailedF",
        code: 500,
        err_code: 10111,
        description: "{err}",
    };
    /// `JSConsumerInvalidDeliverSubject`: 400 / 10112.
    pub const CONSUMER_INVALID_DELIVER_SUBJECT: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidDeliverSubject",
        code: 400,
        err_code: 10112,
        description: "invalid push consumer deliver subject",
    };
    /// `JSStreamMaxBytesRequired`: 400 / 10113.
    pub const STREAM_MAX_BYTES_REQUIRED: ErrorCode = ErrorCode {
        name: "JSStreamMaxBytesRequired",
        code: 400,
        err_code: 10113,
        description: "account requires a stream config to have max bytes set",
    };
    /// `JSConsumerMaxRequestBatchNegativeErr`: 400 / 10114.
    pub const CONSUMER_MAX_REQUEST_BATCH_NEGATIVE: ErrorCode = ErrorCode {
        name: "JSConsumerMaxRequestBatchNegativeErr",
        code: 400,
        err_code: 10114,
        description: "consumer max request batch needs to be > 0",
    };
    /// `JSConsumerMaxRequestExpiresTooSmall`: 400 / 10115.
    pub const CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL: ErrorCode = ErrorCode {
        name: "JSConsumerMaxRequestExpiresTooSmall",
        code: 400,
        err_code: 10115,
        description: "consumer max request expires needs to be >= 1ms",
    };
    /// `JSConsumerMaxDeliverBackoffErr`: 400 / 10116.
    pub const CONSUMER_MAX_DELIVER_BACKOFF: ErrorCode = ErrorCode {
        name: "JSConsumerMaxDeliverBackoffErr",
        code: 400,
        err_code: 10116,
        description: "max deliver is required to be > length of backoff values",
    };
    /// `JSStreamInfoMaxSubjectsErr`: 500 / 10117.
    pub const STREAM_INFO_MAX_SUBJECTS: ErrorCode = ErrorCode {
        name: "JSStreamInfoMaxSubjectsErr",
        code: 500,
        err_code: 10117,
        description: "subject details would exceed maximum allowed",
    };
    /// `JSStreamOfflineErr`: 500 / 10118.
    pub const STREAM_OFFLINE: ErrorCode = ErrorCode {
        name: "JSStreamOfflineErr",
        code: 500,
        err_code: 10118,
        description: "stream is offline",
    };
    /// `JSConsumerOfflineErr`: 500 / 10119.
    pub const CONSUMER_OFFLINE: ErrorCode = ErrorCode {
        name: "JSConsumerOfflineErr",
        code: 500,
        err_code: 10119,
        description: "consumer is offline",
    };
    /// `JSNoLimitsErr`: 400 / 10120.
    pub const NO_LIMITS: ErrorCode = ErrorCode {
        name: "JSNoLimitsErr",
        code: 400,
        err_code: 10120,
        description: "no JetStream default or applicable tiered limit present",
    };
    /// `JSConsumerMaxPendingAckExcessErrF`: 400 / 10121.
    pub const CONSUMER_MAX_PENDING_ACK_EXCESS: ErrorCode = ErrorCode {
        name: "JSConsumerMaxPendingAckExcessErrF",
        code: 400,
        err_code: 10121,
        description: "consumer max ack pending exceeds system limit of {limit}",
    };
    /// `JSStreamMaxStreamBytesExceeded`: 400 / 10122.
    pub const STREAM_MAX_STREAM_BYTES_EXCEEDED: ErrorCode = ErrorCode {
        name: "JSStreamMaxStreamBytesExceeded",
        code: 400,
        err_code: 10122,
        description: "stream max bytes exceeds account limit max stream bytes",
    };
    /// `JSStreamMoveAndScaleErr`: 400 / 10123.
    pub const STREAM_MOVE_AND_SCALE: ErrorCode = ErrorCode {
        name: "JSStreamMoveAndScaleErr",
        code: 400,
        err_code: 10123,
        description: "can not move and scale a stream in a single update",
    };
    /// `JSStreamMoveInProgressErr`: 400 / 10124.
    pub const STREAM_MOVE_IN_PROGRESS: ErrorCode = ErrorCode {
        name: "JSStreamMoveInProgressErr",
        code: 400,
        err_code: 10124,
        description: "stream move already in progress",
    };
    /// `JSConsumerMaxRequestBatchExceededF`: 400 / 10125.
    pub const CONSUMER_MAX_REQUEST_BATCH_EXCEEDED: ErrorCode = ErrorCode {
        name: "JSConsumerMaxRequestBatchExceededF",
        code: 400,
        err_code: 10125,
        description: "consumer max request batch exceeds server limit of {limit}",
    };
    /// `JSConsumerReplicasExceedsStream`: 400 / 10126.
    pub const CONSUMER_REPLICAS_EXCEEDS_STREAM: ErrorCode = ErrorCode {
        name: "JSConsumerReplicasExceedsStream",
        code: 400,
        err_code: 10126,
        description: "consumer config replica count exceeds parent stream",
    };
    /// `JSConsumerNameContainsPathSeparatorsErr`: 400 / 10127.
    pub const CONSUMER_NAME_CONTAINS_PATH_SEPARATORS: ErrorCode = ErrorCode {
        name: "JSConsumerNameContainsPathSeparatorsErr",
        code: 400,
        err_code: 10127,
        description: "Consumer name can not contain path separators",
    };
    /// `JSStreamNameContainsPathSeparatorsErr`: 400 / 10128.
    pub const STREAM_NAME_CONTAINS_PATH_SEPARATORS: ErrorCode = ErrorCode {
        name: "JSStreamNameContainsPathSeparatorsErr",
        code: 400,
        err_code: 10128,
        description: "Stream name can not contain path separators",
    };
    /// `JSStreamReconfigureNotInProgressErr`: 400 / 10129.
    pub const STREAM_RECONFIGURE_NOT_IN_PROGRESS: ErrorCode = ErrorCode {
        name: "JSStreamReconfigureNotInProgressErr",
        code: 400,
        err_code: 10129,
        description: "stream reconfiguration not in progress",
    };
    /// `JSStreamNameExistRestoreFailedErr`: 400 / 10130.
    pub const STREAM_NAME_EXIST_RESTORE_FAILED: ErrorCode = ErrorCode {
        name: "JSStreamNameExistRestoreFailedErr",
        code: 400,
        err_code: 10130,
        description: "stream name already in use, cannot restore",
    };
    /// `JSConsumerCreateFilterSubjectMismatchErr`: 400 / 10131.
    pub const CONSUMER_CREATE_FILTER_SUBJECT_MISMATCH: ErrorCode = ErrorCode {
        name: "JSConsumerCreateFilterSubjectMismatchErr",
        code: 400,
        err_code: 10131,
        description: "Consumer create request did not match filtered subject from create subject",
    };
    /// `JSConsumerCreateDurableAndNameMismatch`: 400 / 10132.
    pub const CONSUMER_CREATE_DURABLE_AND_NAME_MISMATCH: ErrorCode = ErrorCode {
        name: "JSConsumerCreateDurableAndNameMismatch",
        code: 400,
        err_code: 10132,
        description: "Consumer Durable and Name have to be equal if both are provided",
    };
    /// `JSReplicasCountCannotBeNegative`: 400 / 10133.
    pub const REPLICAS_COUNT_CANNOT_BE_NEGATIVE: ErrorCode = ErrorCode {
        name: "JSReplicasCountCannotBeNegative",
        code: 400,
        err_code: 10133,
        description: "replicas count cannot be negative",
    };
    /// `JSConsumerReplicasShouldMatchStream`: 400 / 10134.
    pub const CONSUMER_REPLICAS_SHOULD_MATCH_STREAM: ErrorCode = ErrorCode {
        name: "JSConsumerReplicasShouldMatchStream",
        code: 400,
        err_code: 10134,
        description: "consumer config replicas must match interest retention stream's replicas",
    };
    /// `JSConsumerMetadataLengthErrF`: 400 / 10135.
    pub const CONSUMER_METADATA_LENGTH: ErrorCode = ErrorCode {
        name: "JSConsumerMetadataLengthErrF",
        code: 400,
        err_code: 10135,
        description: "consumer metadata exceeds maximum size of {limit}",
    };
    /// `JSConsumerDuplicateFilterSubjects`: 400 / 10136.
    pub const CONSUMER_DUPLICATE_FILTER_SUBJECTS: ErrorCode = ErrorCode {
        name: "JSConsumerDuplicateFilterSubjects",
        code: 400,
        err_code: 10136,
        description: "consumer cannot have both FilterSubject and FilterSubjects specified",
    };
    /// `JSConsumerMultipleFiltersNotAllowed`: 400 / 10137.
    pub const CONSUMER_MULTIPLE_FILTERS_NOT_ALLOWED: ErrorCode = ErrorCode {
        name: "JSConsumerMultipleFiltersNotAllowed",
        code: 400,
        err_code: 10137,
        description: "consumer with multiple subject filters cannot use subject based API",
    };
    /// `JSConsumerOverlappingSubjectFilters`: 400 / 10138.
    pub const CONSUMER_OVERLAPPING_SUBJECT_FILTERS: ErrorCode = ErrorCode {
        name: "JSConsumerOverlappingSubjectFilters",
        code: 400,
        err_code: 10138,
        description: "consumer subject filters cannot overlap",
    };
    /// `JSConsumerEmptyFilter`: 400 / 10139.
    pub const CONSUMER_EMPTY_FILTER: ErrorCode = ErrorCode {
        name: "JSConsumerEmptyFilter",
        code: 400,
        err_code: 10139,
        description: "consumer filter in FilterSubjects cannot be empty",
    };
    /// `JSSourceDuplicateDetected`: 400 / 10140.
    pub const SOURCE_DUPLICATE_DETECTED: ErrorCode = ErrorCode {
        name: "JSSourceDuplicateDetected",
        code: 400,
        err_code: 10140,
        description: "duplicate source configuration detected",
    };
    /// `JSSourceInvalidStreamName`: 400 / 10141.
    pub const SOURCE_INVALID_STREAM_NAME: ErrorCode = ErrorCode {
        name: "JSSourceInvalidStreamName",
        code: 400,
        err_code: 10141,
        description: "sourced stream name is invalid",
    };
    /// `JSMirrorInvalidStreamName`: 400 / 10142.
    pub const MIRROR_INVALID_STREAM_NAME: ErrorCode = ErrorCode {
        name: "JSMirrorInvalidStreamName",
        code: 400,
        err_code: 10142,
        description: "mirrored stream name is invalid",
    };
    /// `JSMirrorWithFirstSeqErr`: 400 / 10143.
    pub const MIRROR_WITH_FIRST_SEQ: ErrorCode = ErrorCode {
        name: "JSMirrorWithFirstSeqErr",
        code: 400,
        err_code: 10143,
        description: "stream mirrors can not have first sequence configured",
    };
    /// `JSSourceMultipleFiltersNotAllowed`: 400 / 10144.
    pub const SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED: ErrorCode = ErrorCode {
        name: "JSSourceMultipleFiltersNotAllowed",
        code: 400,
        err_code: 10144,
        description: "source with multiple subject transforms cannot also have a single subject filter",
    };
    /// `JSSourceInvalidSubjectFilter`: 400 / 10145.
    pub const SOURCE_INVALID_SUBJECT_FILTER: ErrorCode = ErrorCode {
        name: "JSSourceInvalidSubjectFilter",
        code: 400,
        err_code: 10145,
        description: "source transform source: {err}",
    };
    /// `JSSourceInvalidTransformDestination`: 400 / 10146.
    pub const SOURCE_INVALID_TRANSFORM_DESTINATION: ErrorCode = ErrorCode {
        name: "JSSourceInvalidTransformDestination",
        code: 400,
        err_code: 10146,
        description: "source transform: {err}",
    };
    /// `JSSourceOverlappingSubjectFilters`: 400 / 10147.
    pub const SOURCE_OVERLAPPING_SUBJECT_FILTERS: ErrorCode = ErrorCode {
        name: "JSSourceOverlappingSubjectFilters",
        code: 400,
        err_code: 10147,
        description: "source filters can not overlap",
    };
    /// `JSConsumerAlreadyExists`: 400 / 10148.
    pub const CONSUMER_ALREADY_EXISTS: ErrorCode = ErrorCode {
        name: "JSConsumerAlreadyExists",
        code: 400,
        err_code: 10148,
        description: "consumer already exists",
    };
    /// `JSConsumerDoesNotExist`: 400 / 10149.
    pub const CONSUMER_DOES_NOT_EXIST: ErrorCode = ErrorCode {
        name: "JSConsumerDoesNotExist",
        code: 400,
        err_code: 10149,
        description: "consumer does not exist",
    };
    /// `JSMirrorMultipleFiltersNotAllowed`: 400 / 10150.
    pub const MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED: ErrorCode = ErrorCode {
        name: "JSMirrorMultipleFiltersNotAllowed",
        code: 400,
        err_code: 10150,
        description: "mirror with multiple subject transforms cannot also have a single subject filter",
    };
    /// `JSMirrorInvalidSubjectFilter`: 400 / 10151.
    pub const MIRROR_INVALID_SUBJECT_FILTER: ErrorCode = ErrorCode {
        name: "JSMirrorInvalidSubjectFilter",
        code: 400,
        err_code: 10151,
        description: "mirror transform source: {err}",
    };
    /// `JSMirrorOverlappingSubjectFilters`: 400 / 10152.
    pub const MIRROR_OVERLAPPING_SUBJECT_FILTERS: ErrorCode = ErrorCode {
        name: "JSMirrorOverlappingSubjectFilters",
        code: 400,
        err_code: 10152,
        description: "mirror subject filters can not overlap",
    };
    /// `JSConsumerInactiveThresholdExcess`: 400 / 10153.
    pub const CONSUMER_INACTIVE_THRESHOLD_EXCESS: ErrorCode = ErrorCode {
        name: "JSConsumerInactiveThresholdExcess",
        code: 400,
        err_code: 10153,
        description: "consumer inactive threshold exceeds system limit of {limit}",
    };
    /// `JSMirrorInvalidTransformDestination`: 400 / 10154.
    pub const MIRROR_INVALID_TRANSFORM_DESTINATION: ErrorCode = ErrorCode {
        name: "JSMirrorInvalidTransformDestination",
        code: 400,
        err_code: 10154,
        description: "mirror transform: {err}",
    };
    /// `JSStreamTransformInvalidSource`: 400 / 10155.
    pub const STREAM_TRANSFORM_INVALID_SOURCE: ErrorCode = ErrorCode {
        name: "JSStreamTransformInvalidSource",
        code: 400,
        err_code: 10155,
        description: "stream transform source: {err}",
    };
    /// `JSStreamTransformInvalidDestination`: 400 / 10156.
    pub const STREAM_TRANSFORM_INVALID_DESTINATION: ErrorCode = ErrorCode {
        name: "JSStreamTransformInvalidDestination",
        code: 400,
        err_code: 10156,
        description: "stream transform: {err}",
    };
    /// `JSPedanticErrF`: 400 / 10157.
    pub const PEDANTIC: ErrorCode = ErrorCode {
        name: "JSPedanticErrF",
        code: 400,
        err_code: 10157,
        description: "pedantic mode: {err}",
    };
    /// `JSStreamDuplicateMessageConflict`: 409 / 10158.
    pub const STREAM_DUPLICATE_MESSAGE_CONFLICT: ErrorCode = ErrorCode {
        name: "JSStreamDuplicateMessageConflict",
        code: 409,
        err_code: 10158,
        description: "duplicate message id is in process",
    };
    /// `JSConsumerPriorityPolicyWithoutGroup`: 400 / 10159.
    pub const CONSUMER_PRIORITY_POLICY_WITHOUT_GROUP: ErrorCode = ErrorCode {
        name: "JSConsumerPriorityPolicyWithoutGroup",
        code: 400,
        err_code: 10159,
        description: "Setting PriorityPolicy requires at least one PriorityGroup to be set",
    };
    /// `JSConsumerInvalidPriorityGroupErr`: 400 / 10160.
    pub const CONSUMER_INVALID_PRIORITY_GROUP: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidPriorityGroupErr",
        code: 400,
        err_code: 10160,
        description: "Provided priority group does not exist for this consumer",
    };
    /// `JSConsumerEmptyGroupName`: 400 / 10161.
    pub const CONSUMER_EMPTY_GROUP_NAME: ErrorCode = ErrorCode {
        name: "JSConsumerEmptyGroupName",
        code: 400,
        err_code: 10161,
        description: "Group name cannot be an empty string",
    };
    /// `JSConsumerInvalidGroupNameErr`: 400 / 10162.
    pub const CONSUMER_INVALID_GROUP_NAME: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidGroupNameErr",
        code: 400,
        err_code: 10162,
        description: "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
    };
    /// `JSStreamExpectedLastSeqPerSubjectNotReady`: 503 / 10163.
    pub const STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_NOT_READY: ErrorCode = ErrorCode {
        name: "JSStreamExpectedLastSeqPerSubjectNotReady",
        code: 503,
        err_code: 10163,
        description: "expected last sequence per subject temporarily unavailable",
    };
    /// `JSStreamWrongLastSequenceConstantErr`: 400 / 10164.
    pub const STREAM_WRONG_LAST_SEQUENCE_CONSTANT: ErrorCode = ErrorCode {
        name: "JSStreamWrongLastSequenceConstantErr",
        code: 400,
        err_code: 10164,
        description: "wrong last sequence",
    };
    /// `JSMessageTTLInvalidErr`: 400 / 10165.
    pub const MESSAGE_TTL_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageTTLInvalidErr",
        code: 400,
        err_code: 10165,
        description: "invalid per-message TTL",
    };
    /// `JSMessageTTLDisabledErr`: 400 / 10166.
    pub const MESSAGE_TTL_DISABLED: ErrorCode = ErrorCode {
        name: "JSMessageTTLDisabledErr",
        code: 400,
        err_code: 10166,
        description: "per-message TTL is disabled",
    };
    /// `JSStreamTooManyRequests`: 429 / 10167.
    pub const STREAM_TOO_MANY_REQUESTS: ErrorCode = ErrorCode {
        name: "JSStreamTooManyRequests",
        code: 429,
        err_code: 10167,
        description: "too many requests",
    };
    /// `JSMessageIncrDisabledErr`: 400 / 10168.
    pub const MESSAGE_INCR_DISABLED: ErrorCode = ErrorCode {
        name: "JSMessageIncrDisabledErr",
        code: 400,
        err_code: 10168,
        description: "message counters is disabled",
    };
    /// `JSMessageIncrMissingErr`: 400 / 10169.
    pub const MESSAGE_INCR_MISSING: ErrorCode = ErrorCode {
        name: "JSMessageIncrMissingErr",
        code: 400,
        err_code: 10169,
        description: "message counter increment is missing",
    };
    /// `JSMessageIncrPayloadErr`: 400 / 10170.
    pub const MESSAGE_INCR_PAYLOAD: ErrorCode = ErrorCode {
        name: "JSMessageIncrPayloadErr",
        code: 400,
        err_code: 10170,
        description: "message counter has payload",
    };
    /// `JSMessageIncrInvalidErr`: 400 / 10171.
    pub const MESSAGE_INCR_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageIncrInvalidErr",
        code: 400,
        err_code: 10171,
        description: "message counter increment is invalid",
    };
    /// `JSMessageCounterBrokenErr`: 400 / 10172.
    pub const MESSAGE_COUNTER_BROKEN: ErrorCode = ErrorCode {
        name: "JSMessageCounterBrokenErr",
        code: 400,
        err_code: 10172,
        description: "message counter is broken",
    };
    /// `JSMirrorWithCountersErr`: 400 / 10173.
    pub const MIRROR_WITH_COUNTERS: ErrorCode = ErrorCode {
        name: "JSMirrorWithCountersErr",
        code: 400,
        err_code: 10173,
        description: "stream mirrors can not also calculate counters",
    };
    /// `JSAtomicPublishDisabledErr`: 400 / 10174.
    pub const ATOMIC_PUBLISH_DISABLED: ErrorCode = ErrorCode {
        name: "JSAtomicPublishDisabledErr",
        code: 400,
        err_code: 10174,
        description: "atomic publish is disabled",
    };
    /// `JSAtomicPublishMissingSeqErr`: 400 / 10175.
    pub const ATOMIC_PUBLISH_MISSING_SEQ: ErrorCode = ErrorCode {
        name: "JSAtomicPublishMissingSeqErr",
        code: 400,
        err_code: 10175,
        description: "atomic publish sequence is missing",
    };
    /// `JSAtomicPublishIncompleteBatchErr`: 400 / 10176.
    pub const ATOMIC_PUBLISH_INCOMPLETE_BATCH: ErrorCode = ErrorCode {
        name: "JSAtomicPublishIncompleteBatchErr",
        code: 400,
        err_code: 10176,
        description: "atomic publish batch is incomplete",
    };
    /// `JSAtomicPublishUnsupportedHeaderBatchErr`: 400 / 10177.
    pub const ATOMIC_PUBLISH_UNSUPPORTED_HEADER_BATCH: ErrorCode = ErrorCode {
        name: "JSAtomicPublishUnsupportedHeaderBatchErr",
        code: 400,
        err_code: 10177,
        description: "atomic publish unsupported header used: {header}",
    };
    /// `JSConsumerPushWithPriorityGroupErr`: 400 / 10178.
    pub const CONSUMER_PUSH_WITH_PRIORITY_GROUP: ErrorCode = ErrorCode {
        name: "JSConsumerPushWithPriorityGroupErr",
        code: 400,
        err_code: 10178,
        description: "priority groups can not be used with push consumers",
    };
    /// `JSAtomicPublishInvalidBatchIDErr`: 400 / 10179.
    pub const ATOMIC_PUBLISH_INVALID_BATCH_ID: ErrorCode = ErrorCode {
        name: "JSAtomicPublishInvalidBatchIDErr",
        code: 400,
        err_code: 10179,
        description: "atomic publish batch ID is invalid",
    };
    /// `JSStreamMinLastSeqErr`: 412 / 10180.
    pub const STREAM_MIN_LAST_SEQ: ErrorCode = ErrorCode {
        name: "JSStreamMinLastSeqErr",
        code: 412,
        err_code: 10180,
        description: "min last sequence",
    };
    /// `JSConsumerAckPolicyInvalidErr`: 400 / 10181.
    pub const CONSUMER_ACK_POLICY_INVALID: ErrorCode = ErrorCode {
        name: "JSConsumerAckPolicyInvalidErr",
        code: 400,
        err_code: 10181,
        description: "consumer ack policy invalid",
    };
    /// `JSConsumerReplayPolicyInvalidErr`: 400 / 10182.
    pub const CONSUMER_REPLAY_POLICY_INVALID: ErrorCode = ErrorCode {
        name: "JSConsumerReplayPolicyInvalidErr",
        code: 400,
        err_code: 10182,
        description: "consumer replay policy invalid",
    };
    /// `JSConsumerAckWaitNegativeErr`: 400 / 10183.
    pub const CONSUMER_ACK_WAIT_NEGATIVE: ErrorCode = ErrorCode {
        name: "JSConsumerAckWaitNegativeErr",
        code: 400,
        err_code: 10183,
        description: "consumer ack wait needs to be positive",
    };
    /// `JSConsumerBackOffNegativeErr`: 400 / 10184.
    pub const CONSUMER_BACK_OFF_NEGATIVE: ErrorCode = ErrorCode {
        name: "JSConsumerBackOffNegativeErr",
        code: 400,
        err_code: 10184,
        description: "consumer backoff needs to be positive",
    };
    /// `JSRequiredApiLevelErr`: 412 / 10185.
    pub const REQUIRED_API_LEVEL: ErrorCode = ErrorCode {
        name: "JSRequiredApiLevelErr",
        code: 412,
        err_code: 10185,
        description: "JetStream minimum api level required",
    };
    /// `JSMirrorWithMsgSchedulesErr`: 400 / 10186.
    pub const MIRROR_WITH_MSG_SCHEDULES: ErrorCode = ErrorCode {
        name: "JSMirrorWithMsgSchedulesErr",
        code: 400,
        err_code: 10186,
        description: "stream mirrors can not also schedule messages",
    };
    /// `JSSourceWithMsgSchedulesErr`: 400 / 10187.
    pub const SOURCE_WITH_MSG_SCHEDULES: ErrorCode = ErrorCode {
        name: "JSSourceWithMsgSchedulesErr",
        code: 400,
        err_code: 10187,
        description: "stream source can not also schedule messages",
    };
    /// `JSMessageSchedulesDisabledErr`: 400 / 10188.
    pub const MESSAGE_SCHEDULES_DISABLED: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesDisabledErr",
        code: 400,
        err_code: 10188,
        description: "message schedules is disabled",
    };
    /// `JSMessageSchedulesPatternInvalidErr`: 400 / 10189.
    pub const MESSAGE_SCHEDULES_PATTERN_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesPatternInvalidErr",
        code: 400,
        err_code: 10189,
        description: "message schedules pattern is invalid",
    };
    /// `JSMessageSchedulesTargetInvalidErr`: 400 / 10190.
    pub const MESSAGE_SCHEDULES_TARGET_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesTargetInvalidErr",
        code: 400,
        err_code: 10190,
        description: "message schedules target is invalid",
    };
    /// `JSMessageSchedulesTTLInvalidErr`: 400 / 10191.
    pub const MESSAGE_SCHEDULES_TTL_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesTTLInvalidErr",
        code: 400,
        err_code: 10191,
        description: "message schedules invalid per-message TTL",
    };
    /// `JSMessageSchedulesRollupInvalidErr`: 400 / 10192.
    pub const MESSAGE_SCHEDULES_ROLLUP_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesRollupInvalidErr",
        code: 400,
        err_code: 10192,
        description: "message schedules invalid rollup",
    };
    /// `JSStreamExpectedLastSeqPerSubjectInvalid`: 400 / 10193.
    pub const STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_INVALID: ErrorCode = ErrorCode {
        name: "JSStreamExpectedLastSeqPerSubjectInvalid",
        code: 400,
        err_code: 10193,
        description: "missing sequence for expected last sequence per subject",
    };
    /// `JSStreamOfflineReasonErrF`: 500 / 10194.
    pub const STREAM_OFFLINE_REASON: ErrorCode = ErrorCode {
        name: "JSStreamOfflineReasonErrF",
        code: 500,
        err_code: 10194,
        description: "stream is offline: {err}",
    };
    /// `JSConsumerOfflineReasonErrF`: 500 / 10195.
    pub const CONSUMER_OFFLINE_REASON: ErrorCode = ErrorCode {
        name: "JSConsumerOfflineReasonErrF",
        code: 500,
        err_code: 10195,
        description: "consumer is offline: {err}",
    };
    /// `JSConsumerPriorityGroupWithPolicyNone`: 400 / 10196.
    pub const CONSUMER_PRIORITY_GROUP_WITH_POLICY_NONE: ErrorCode = ErrorCode {
        name: "JSConsumerPriorityGroupWithPolicyNone",
        code: 400,
        err_code: 10196,
        description: "consumer can not have priority groups when policy is none",
    };
    /// `JSConsumerPinnedTTLWithoutPriorityPolicyNone`: 400 / 10197.
    pub const CONSUMER_PINNED_TTL_WITHOUT_PRIORITY_POLICY_NONE: ErrorCode = ErrorCode {
        name: "JSConsumerPinnedTTLWithoutPriorityPolicyNone",
        code: 400,
        err_code: 10197,
        description: "PinnedTTL cannot be set when PriorityPolicy is none",
    };
    /// `JSMirrorWithAtomicPublishErr`: 400 / 10198.
    pub const MIRROR_WITH_ATOMIC_PUBLISH: ErrorCode = ErrorCode {
        name: "JSMirrorWithAtomicPublishErr",
        code: 400,
        err_code: 10198,
        description: "stream mirrors can not also use atomic publishing",
    };
    /// `JSAtomicPublishTooLargeBatchErrF`: 400 / 10199.
    pub const ATOMIC_PUBLISH_TOO_LARGE_BATCH: ErrorCode = ErrorCode {
        name: "JSAtomicPublishTooLargeBatchErrF",
        code: 400,
        err_code: 10199,
        description: "atomic publish batch is too large: {size}",
    };
    /// `JSAtomicPublishInvalidBatchCommitErr`: 400 / 10200.
    pub const ATOMIC_PUBLISH_INVALID_BATCH_COMMIT: ErrorCode = ErrorCode {
        name: "JSAtomicPublishInvalidBatchCommitErr",
        code: 400,
        err_code: 10200,
        description: "atomic publish batch commit is invalid",
    };
    /// `JSAtomicPublishContainsDuplicateMessageErr`: 400 / 10201.
    pub const ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE: ErrorCode = ErrorCode {
        name: "JSAtomicPublishContainsDuplicateMessageErr",
        code: 400,
        err_code: 10201,
        description: "atomic publish batch contains duplicate message id",
    };
    /// `JSClusterServerMemberChangeInflightErr`: 400 / 10202.
    pub const CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT: ErrorCode = ErrorCode {
        name: "JSClusterServerMemberChangeInflightErr",
        code: 400,
        err_code: 10202,
        description: "cluster member change is in progress",
    };
    /// `JSMessageSchedulesSourceInvalidErr`: 400 / 10203.
    pub const MESSAGE_SCHEDULES_SOURCE_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesSourceInvalidErr",
        code: 400,
        err_code: 10203,
        description: "message schedules source is invalid",
    };
    /// `JSConsumerInvalidResetErr`: 400 / 10204.
    pub const CONSUMER_INVALID_RESET: ErrorCode = ErrorCode {
        name: "JSConsumerInvalidResetErr",
        code: 400,
        err_code: 10204,
        description: "invalid reset: {err}",
    };
    /// `JSBatchPublishDisabledErr`: 400 / 10205.
    pub const BATCH_PUBLISH_DISABLED: ErrorCode = ErrorCode {
        name: "JSBatchPublishDisabledErr",
        code: 400,
        err_code: 10205,
        description: "batch publish is disabled",
    };
    /// `JSBatchPublishInvalidPatternErr`: 400 / 10206.
    pub const BATCH_PUBLISH_INVALID_PATTERN: ErrorCode = ErrorCode {
        name: "JSBatchPublishInvalidPatternErr",
        code: 400,
        err_code: 10206,
        description: "batch publish pattern is invalid",
    };
    /// `JSBatchPublishInvalidBatchIDErr`: 400 / 10207.
    pub const BATCH_PUBLISH_INVALID_BATCH_ID: ErrorCode = ErrorCode {
        name: "JSBatchPublishInvalidBatchIDErr",
        code: 400,
        err_code: 10207,
        description: "batch publish ID is invalid",
    };
    /// `JSBatchPublishUnknownBatchIDErr`: 400 / 10208.
    pub const BATCH_PUBLISH_UNKNOWN_BATCH_ID: ErrorCode = ErrorCode {
        name: "JSBatchPublishUnknownBatchIDErr",
        code: 400,
        err_code: 10208,
        description: "batch publish ID unknown",
    };
    /// `JSMirrorWithBatchPublishErr`: 400 / 10209.
    pub const MIRROR_WITH_BATCH_PUBLISH: ErrorCode = ErrorCode {
        name: "JSMirrorWithBatchPublishErr",
        code: 400,
        err_code: 10209,
        description: "stream mirrors can not also use batch publishing",
    };
    /// `JSAtomicPublishTooManyInflight`: 429 / 10210.
    pub const ATOMIC_PUBLISH_TOO_MANY_INFLIGHT: ErrorCode = ErrorCode {
        name: "JSAtomicPublishTooManyInflight",
        code: 429,
        err_code: 10210,
        description: "atomic publish too many inflight",
    };
    /// `JSBatchPublishTooManyInflight`: 429 / 10211.
    pub const BATCH_PUBLISH_TOO_MANY_INFLIGHT: ErrorCode = ErrorCode {
        name: "JSBatchPublishTooManyInflight",
        code: 429,
        err_code: 10211,
        description: "batch publish too many inflight",
    };
    /// `JSMessageSchedulesSchedulerInvalidErr`: 400 / 10212.
    pub const MESSAGE_SCHEDULES_SCHEDULER_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesSchedulerInvalidErr",
        code: 400,
        err_code: 10212,
        description: "message schedules invalid scheduler",
    };
    /// `JSMirrorDurableConsumerCfgInvalid`: 400 / 10213.
    pub const MIRROR_DURABLE_CONSUMER_CFG_INVALID: ErrorCode = ErrorCode {
        name: "JSMirrorDurableConsumerCfgInvalid",
        code: 400,
        err_code: 10213,
        description: "stream mirror consumer config is invalid",
    };
    /// `JSMirrorConsumerRequiresAckFCErr`: 400 / 10214.
    pub const MIRROR_CONSUMER_REQUIRES_ACK_FC: ErrorCode = ErrorCode {
        name: "JSMirrorConsumerRequiresAckFCErr",
        code: 400,
        err_code: 10214,
        description: "stream mirror consumer requires flow control ack policy",
    };
    /// `JSSourceDurableConsumerCfgInvalid`: 400 / 10215.
    pub const SOURCE_DURABLE_CONSUMER_CFG_INVALID: ErrorCode = ErrorCode {
        name: "JSSourceDurableConsumerCfgInvalid",
        code: 400,
        err_code: 10215,
        description: "stream source consumer config is invalid",
    };
    /// `JSSourceDurableConsumerDuplicateDetected`: 400 / 10216.
    pub const SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED: ErrorCode = ErrorCode {
        name: "JSSourceDurableConsumerDuplicateDetected",
        code: 400,
        err_code: 10216,
        description: "duplicate stream source consumer detected",
    };
    /// `JSSourceConsumerRequiresAckFCErr`: 400 / 10217.
    pub const SOURCE_CONSUMER_REQUIRES_ACK_FC: ErrorCode = ErrorCode {
        name: "JSSourceConsumerRequiresAckFCErr",
        code: 400,
        err_code: 10217,
        description: "stream source consumer requires flow control ack policy",
    };
    /// `JSConsumerAckFCRequiresPushErr`: 400 / 10218.
    pub const CONSUMER_ACK_FC_REQUIRES_PUSH: ErrorCode = ErrorCode {
        name: "JSConsumerAckFCRequiresPushErr",
        code: 400,
        err_code: 10218,
        description: "flow control ack policy requires a push based consumer",
    };
    /// `JSConsumerAckFCRequiresFCErr`: 400 / 10219.
    pub const CONSUMER_ACK_FC_REQUIRES_FC: ErrorCode = ErrorCode {
        name: "JSConsumerAckFCRequiresFCErr",
        code: 400,
        err_code: 10219,
        description: "flow control ack policy requires flow control",
    };
    /// `JSConsumerAckFCRequiresMaxAckPendingErr`: 400 / 10220.
    pub const CONSUMER_ACK_FC_REQUIRES_MAX_ACK_PENDING: ErrorCode = ErrorCode {
        name: "JSConsumerAckFCRequiresMaxAckPendingErr",
        code: 400,
        err_code: 10220,
        description: "flow control ack policy requires max ack pending",
    };
    /// `JSConsumerAckFCRequiresNoAckWaitErr`: 400 / 10221.
    pub const CONSUMER_ACK_FC_REQUIRES_NO_ACK_WAIT: ErrorCode = ErrorCode {
        name: "JSConsumerAckFCRequiresNoAckWaitErr",
        code: 400,
        err_code: 10221,
        description: "flow control ack policy requires unset ack wait",
    };
    /// `JSConsumerAckFCRequiresNoMaxDeliverErr`: 400 / 10222.
    pub const CONSUMER_ACK_FC_REQUIRES_NO_MAX_DELIVER: ErrorCode = ErrorCode {
        name: "JSConsumerAckFCRequiresNoMaxDeliverErr",
        code: 400,
        err_code: 10222,
        description: "flow control ack policy requires unset max deliver",
    };
    /// `JSMessageSchedulesTimeZoneInvalidErr`: 400 / 10223.
    pub const MESSAGE_SCHEDULES_TIME_ZONE_INVALID: ErrorCode = ErrorCode {
        name: "JSMessageSchedulesTimeZoneInvalidErr",
        code: 400,
        err_code: 10223,
        description: "message schedules time zone is invalid",
    };
    /// `JSClusterRescueErr`: 400 / 10224.
    pub const CLUSTER_RESCUE: ErrorCode = ErrorCode {
        name: "JSClusterRescueErr",
        code: 400,
        err_code: 10224,
        description: "JetStream system rescue not applied: {err}",
    };
    /// `JSConsumerStreamIdentityMismatchF`: 400 / 10225.
    pub const CONSUMER_STREAM_IDENTITY_MISMATCH: ErrorCode = ErrorCode {
        name: "JSConsumerStreamIdentityMismatchF",
        code: 400,
        err_code: 10225,
        description: "consumer's stream identity does not match: {msg}",
    };
    /// `JSStreamReconfigureInProgressErr`: 400 / 10226.
    pub const STREAM_RECONFIGURE_IN_PROGRESS: ErrorCode = ErrorCode {
        name: "JSStreamReconfigureInProgressErr",
        code: 400,
        err_code: 10226,
        description: "stream reconfiguration already in progress",
    };
    /// `JSMessageSourceHdrNotAllowedErr`: 400 / 10227.
    pub const MESSAGE_SOURCE_HDR_NOT_ALLOWED: ErrorCode = ErrorCode {
        name: "JSMessageSourceHdrNotAllowedErr",
        code: 400,
        err_code: 10227,
        description: "message stream source header is not allowed",
    };

    /// All codes, ordered by `err_code`.
    pub const ALL: &[ErrorCode] = &[
        ACCOUNT_RESOURCES_EXCEEDED,
        BAD_REQUEST,
        CLUSTER_INCOMPLETE,
        CLUSTER_NO_PEERS,
        CLUSTER_NOT_ACTIVE,
        CLUSTER_NOT_ASSIGNED,
        CLUSTER_NOT_AVAIL,
        CLUSTER_NOT_LEADER,
        CLUSTER_REQUIRED,
        CLUSTER_TAGS,
        CONSUMER_CREATE,
        CONSUMER_NAME_EXIST,
        CONSUMER_NOT_FOUND,
        SNAPSHOT_DELIVER_SUBJECT_INVALID,
        CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT,
        CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT,
        CONSUMER_DURABLE_NAME_NOT_SET,
        CONSUMER_EPHEMERAL_WITH_DURABLE_IN_SUBJECT,
        CONSUMER_EPHEMERAL_WITH_DURABLE_NAME,
        STREAM_EXTERNAL_API_OVERLAP,
        STREAM_EXTERNAL_DEL_PREFIX_OVERLAPS,
        INSUFFICIENT_RESOURCES,
        STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ,
        INVALID_JSON,
        MAXIMUM_CONSUMERS_LIMIT,
        MAXIMUM_STREAMS_LIMIT,
        MEMORY_RESOURCES_EXCEEDED,
        MIRROR_CONSUMER_SETUP_FAILED,
        MIRROR_MAX_MESSAGE_SIZE_TOO_BIG,
        MIRROR_WITH_SOURCES,
        MIRROR_WITH_START_SEQ_AND_TIME,
        MIRROR_WITH_SUBJECT_FILTERS,
        MIRROR_WITH_SUBJECTS,
        NO_ACCOUNT,
        CLUSTER_UN_SUPPORT_FEATURE,
        NO_MESSAGE_FOUND,
        NOT_EMPTY_REQUEST,
        NOT_ENABLED_FOR_ACCOUNT,
        CLUSTER_PEER_NOT_MEMBER,
        RAFT_GENERAL,
        RESTORE_SUBSCRIBE_FAILED,
        SEQUENCE_NOT_FOUND,
        CLUSTER_SERVER_NOT_MEMBER,
        SOURCE_CONSUMER_SETUP_FAILED,
        SOURCE_MAX_MESSAGE_SIZE_TOO_BIG,
        STORAGE_RESOURCES_EXCEEDED,
        STREAM_ASSIGNMENT,
        STREAM_CREATE,
        STREAM_DELETE,
        STREAM_GENERAL,
        STREAM_INVALID_CONFIG,
        STREAM_LIMITS,
        STREAM_MESSAGE_EXCEEDS_MAXIMUM,
        STREAM_MIRROR_NOT_UPDATABLE,
        STREAM_MISMATCH,
        STREAM_MSG_DELETE_FAILED,
        STREAM_NAME_EXIST,
        STREAM_NOT_FOUND,
        STREAM_NOT_MATCH,
        STREAM_REPLICAS_NOT_UPDATABLE,
        STREAM_RESTORE,
        STREAM_SEQUENCE_NOT_MATCH,
        STREAM_SNAPSHOT,
        STREAM_SUBJECT_OVERLAP,
        STREAM_TEMPLATE_CREATE,
        STREAM_TEMPLATE_DELETE,
        STREAM_TEMPLATE_NOT_FOUND,
        STREAM_UPDATE,
        STREAM_WRONG_LAST_MSG_ID,
        STREAM_WRONG_LAST_SEQUENCE,
        TEMP_STORAGE_FAILED,
        TEMPLATE_NAME_NOT_MATCH_SUBJECT,
        STREAM_REPLICAS_NOT_SUPPORTED,
        PEER_REMAP,
        NOT_ENABLED,
        STREAM_STORE_FAILED,
        CONSUMER_CONFIG_REQUIRED,
        CONSUMER_DELIVER_TO_WILDCARDS,
        CONSUMER_PUSH_MAX_WAITING,
        CONSUMER_DELIVER_CYCLE,
        CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED,
        CONSUMER_SMALL_HEARTBEAT,
        CONSUMER_PULL_REQUIRES_ACK,
        CONSUMER_PULL_NOT_DURABLE,
        CONSUMER_PULL_WITH_RATE_LIMIT,
        CONSUMER_MAX_WAITING_NEGATIVE,
        CONSUMER_HB_REQUIRES_PUSH,
        CONSUMER_FC_REQUIRES_PUSH,
        CONSUMER_DIRECT_REQUIRES_PUSH,
        CONSUMER_DIRECT_REQUIRES_EPHEMERAL,
        CONSUMER_ON_MAPPED,
        CONSUMER_FILTER_NOT_SUBSET,
        CONSUMER_INVALID_POLICY,
        CONSUMER_INVALID_SAMPLING,
        STREAM_INVALID,
        STREAM_HEADER_EXCEEDS_MAXIMUM,
        CONSUMER_WQ_REQUIRES_EXPLICIT_ACK,
        CONSUMER_WQ_MULTIPLE_UNFILTERED,
        CONSUMER_WQ_CONSUMER_NOT_UNIQUE,
        CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL,
        CONSUMER_NAME_TOO_LONG,
        CONSUMER_BAD_DURABLE_NAME,
        CONSUMER_STORE_FAILED,
        CONSUMER_EXISTING_ACTIVE,
        CONSUMER_REPLACEMENT_WITH_DIFFERENT_NAME,
        CONSUMER_DESCRIPTION_TOO_LONG,
        CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS,
        STREAM_SEALED,
        STREAM_PURGE_FAILED,
        STREAM_ROLLUP_FAILED,
        CONSUMER_INVALID_DELIVER_SUBJECT,
        STREAM_MAX_BYTES_REQUIRED,
        CONSUMER_MAX_REQUEST_BATCH_NEGATIVE,
        CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL,
        CONSUMER_MAX_DELIVER_BACKOFF,
        STREAM_INFO_MAX_SUBJECTS,
        STREAM_OFFLINE,
        CONSUMER_OFFLINE,
        NO_LIMITS,
        CONSUMER_MAX_PENDING_ACK_EXCESS,
        STREAM_MAX_STREAM_BYTES_EXCEEDED,
        STREAM_MOVE_AND_SCALE,
        STREAM_MOVE_IN_PROGRESS,
        CONSUMER_MAX_REQUEST_BATCH_EXCEEDED,
        CONSUMER_REPLICAS_EXCEEDS_STREAM,
        CONSUMER_NAME_CONTAINS_PATH_SEPARATORS,
        STREAM_NAME_CONTAINS_PATH_SEPARATORS,
        STREAM_RECONFIGURE_NOT_IN_PROGRESS,
        STREAM_NAME_EXIST_RESTORE_FAILED,
        CONSUMER_CREATE_FILTER_SUBJECT_MISMATCH,
        CONSUMER_CREATE_DURABLE_AND_NAME_MISMATCH,
        REPLICAS_COUNT_CANNOT_BE_NEGATIVE,
        CONSUMER_REPLICAS_SHOULD_MATCH_STREAM,
        CONSUMER_METADATA_LENGTH,
        CONSUMER_DUPLICATE_FILTER_SUBJECTS,
        CONSUMER_MULTIPLE_FILTERS_NOT_ALLOWED,
        CONSUMER_OVERLAPPING_SUBJECT_FILTERS,
        CONSUMER_EMPTY_FILTER,
        SOURCE_DUPLICATE_DETECTED,
        SOURCE_INVALID_STREAM_NAME,
        MIRROR_INVALID_STREAM_NAME,
        MIRROR_WITH_FIRST_SEQ,
        SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED,
        SOURCE_INVALID_SUBJECT_FILTER,
        SOURCE_INVALID_TRANSFORM_DESTINATION,
        SOURCE_OVERLAPPING_SUBJECT_FILTERS,
        CONSUMER_ALREADY_EXISTS,
        CONSUMER_DOES_NOT_EXIST,
        MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED,
        MIRROR_INVALID_SUBJECT_FILTER,
        MIRROR_OVERLAPPING_SUBJECT_FILTERS,
        CONSUMER_INACTIVE_THRESHOLD_EXCESS,
        MIRROR_INVALID_TRANSFORM_DESTINATION,
        STREAM_TRANSFORM_INVALID_SOURCE,
        STREAM_TRANSFORM_INVALID_DESTINATION,
        PEDANTIC,
        STREAM_DUPLICATE_MESSAGE_CONFLICT,
        CONSUMER_PRIORITY_POLICY_WITHOUT_GROUP,
        CONSUMER_INVALID_PRIORITY_GROUP,
        CONSUMER_EMPTY_GROUP_NAME,
        CONSUMER_INVALID_GROUP_NAME,
        STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_NOT_READY,
        STREAM_WRONG_LAST_SEQUENCE_CONSTANT,
        MESSAGE_TTL_INVALID,
        MESSAGE_TTL_DISABLED,
        STREAM_TOO_MANY_REQUESTS,
        MESSAGE_INCR_DISABLED,
        MESSAGE_INCR_MISSING,
        MESSAGE_INCR_PAYLOAD,
        MESSAGE_INCR_INVALID,
        MESSAGE_COUNTER_BROKEN,
        MIRROR_WITH_COUNTERS,
        ATOMIC_PUBLISH_DISABLED,
        ATOMIC_PUBLISH_MISSING_SEQ,
        ATOMIC_PUBLISH_INCOMPLETE_BATCH,
        ATOMIC_PUBLISH_UNSUPPORTED_HEADER_BATCH,
        CONSUMER_PUSH_WITH_PRIORITY_GROUP,
        ATOMIC_PUBLISH_INVALID_BATCH_ID,
        STREAM_MIN_LAST_SEQ,
        CONSUMER_ACK_POLICY_INVALID,
        CONSUMER_REPLAY_POLICY_INVALID,
        CONSUMER_ACK_WAIT_NEGATIVE,
        CONSUMER_BACK_OFF_NEGATIVE,
        REQUIRED_API_LEVEL,
        MIRROR_WITH_MSG_SCHEDULES,
        SOURCE_WITH_MSG_SCHEDULES,
        MESSAGE_SCHEDULES_DISABLED,
        MESSAGE_SCHEDULES_PATTERN_INVALID,
        MESSAGE_SCHEDULES_TARGET_INVALID,
        MESSAGE_SCHEDULES_TTL_INVALID,
        MESSAGE_SCHEDULES_ROLLUP_INVALID,
        STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_INVALID,
        STREAM_OFFLINE_REASON,
        CONSUMER_OFFLINE_REASON,
        CONSUMER_PRIORITY_GROUP_WITH_POLICY_NONE,
        CONSUMER_PINNED_TTL_WITHOUT_PRIORITY_POLICY_NONE,
        MIRROR_WITH_ATOMIC_PUBLISH,
        ATOMIC_PUBLISH_TOO_LARGE_BATCH,
        ATOMIC_PUBLISH_INVALID_BATCH_COMMIT,
        ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE,
        CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT,
        MESSAGE_SCHEDULES_SOURCE_INVALID,
        CONSUMER_INVALID_RESET,
        BATCH_PUBLISH_DISABLED,
        BATCH_PUBLISH_INVALID_PATTERN,
        BATCH_PUBLISH_INVALID_BATCH_ID,
        BATCH_PUBLISH_UNKNOWN_BATCH_ID,
        MIRROR_WITH_BATCH_PUBLISH,
        ATOMIC_PUBLISH_TOO_MANY_INFLIGHT,
        BATCH_PUBLISH_TOO_MANY_INFLIGHT,
        MESSAGE_SCHEDULES_SCHEDULER_INVALID,
        MIRROR_DURABLE_CONSUMER_CFG_INVALID,
        MIRROR_CONSUMER_REQUIRES_ACK_FC,
        SOURCE_DURABLE_CONSUMER_CFG_INVALID,
        SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED,
        SOURCE_CONSUMER_REQUIRES_ACK_FC,
        CONSUMER_ACK_FC_REQUIRES_PUSH,
        CONSUMER_ACK_FC_REQUIRES_FC,
        CONSUMER_ACK_FC_REQUIRES_MAX_ACK_PENDING,
        CONSUMER_ACK_FC_REQUIRES_NO_ACK_WAIT,
        CONSUMER_ACK_FC_REQUIRES_NO_MAX_DELIVER,
        MESSAGE_SCHEDULES_TIME_ZONE_INVALID,
        CLUSTER_RESCUE,
        CONSUMER_STREAM_IDENTITY_MISMATCH,
        STREAM_RECONFIGURE_IN_PROGRESS,
        MESSAGE_SOURCE_HDR_NOT_ALLOWED,
    ];
}

impl ApiError {
    /// 400 / 10002: "resource limits exceeded for account".
    pub fn account_resources_exceeded() -> Self {
        Self::from_code(codes::ACCOUNT_RESOURCES_EXCEEDED)
    }

    /// 400 / 10003: "bad request".
    pub fn bad_request() -> Self {
        Self::from_code(codes::BAD_REQUEST)
    }

    /// 503 / 10004: "incomplete results".
    pub fn cluster_incomplete() -> Self {
        Self::from_code(codes::CLUSTER_INCOMPLETE)
    }

    /// 400 / 10005: "{err}".
    pub fn cluster_no_peers(err: impl Display) -> Self {
        Self::with_args(codes::CLUSTER_NO_PEERS, &[("{err}", err.to_string())])
    }

    /// 500 / 10006: "JetStream not in clustered mode".
    pub fn cluster_not_active() -> Self {
        Self::from_code(codes::CLUSTER_NOT_ACTIVE)
    }

    /// 500 / 10007: "JetStream cluster not assigned to this server".
    pub fn cluster_not_assigned() -> Self {
        Self::from_code(codes::CLUSTER_NOT_ASSIGNED)
    }

    /// 503 / 10008: "JetStream system temporarily unavailable".
    pub fn cluster_not_avail() -> Self {
        Self::from_code(codes::CLUSTER_NOT_AVAIL)
    }

    /// 500 / 10009: "JetStream cluster can not handle request".
    pub fn cluster_not_leader() -> Self {
        Self::from_code(codes::CLUSTER_NOT_LEADER)
    }

    /// 503 / 10010: "JetStream clustering support required".
    pub fn cluster_required() -> Self {
        Self::from_code(codes::CLUSTER_REQUIRED)
    }

    /// 400 / 10011: "tags placement not supported for operation".
    pub fn cluster_tags() -> Self {
        Self::from_code(codes::CLUSTER_TAGS)
    }

    /// 500 / 10012: "{err}".
    pub fn consumer_create(err: impl Display) -> Self {
        Self::with_args(codes::CONSUMER_CREATE, &[("{err}", err.to_string())])
    }

    /// 400 / 10013: "consumer name already in use".
    pub fn consumer_name_exist() -> Self {
        Self::from_code(codes::CONSUMER_NAME_EXIST)
    }

    /// 404 / 10014: "consumer not found".
    pub fn consumer_not_found() -> Self {
        Self::from_code(codes::CONSUMER_NOT_FOUND)
    }

    /// 400 / 10015: "deliver subject not valid".
    pub fn snapshot_deliver_subject_invalid() -> Self {
        Self::from_code(codes::SNAPSHOT_DELIVER_SUBJECT_INVALID)
    }

    /// 400 / 10016: "consumer expected to be durable but no durable name set in subject".
    pub fn consumer_durable_name_not_in_subject() -> Self {
        Self::from_code(codes::CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT)
    }

    /// 400 / 10017: "consumer name in subject does not match durable name in request".
    pub fn consumer_durable_name_not_match_subject() -> Self {
        Self::from_code(codes::CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT)
    }

    /// 400 / 10018: "consumer expected to be durable but a durable name was not set".
    pub fn consumer_durable_name_not_set() -> Self {
        Self::from_code(codes::CONSUMER_DURABLE_NAME_NOT_SET)
    }

    /// 400 / 10019: "consumer expected to be ephemeral but detected a durable name set in subject".
    pub fn consumer_ephemeral_with_durable_in_subject() -> Self {
        Self::from_code(codes::CONSUMER_EPHEMERAL_WITH_DURABLE_IN_SUBJECT)
    }

    /// 400 / 10020: "consumer expected to be ephemeral but a durable name was set in request".
    pub fn consumer_ephemeral_with_durable_name() -> Self {
        Self::from_code(codes::CONSUMER_EPHEMERAL_WITH_DURABLE_NAME)
    }

    /// 400 / 10021: "stream external api prefix {prefix} must not overlap with {subject}".
    pub fn stream_external_api_overlap(prefix: impl Display, subject: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_EXTERNAL_API_OVERLAP,
            &[
                ("{prefix}", prefix.to_string()),
                ("{subject}", subject.to_string()),
            ],
        )
    }

    /// 400 / 10022: "stream external delivery prefix {prefix} overlaps with stream subject {subject}".
    pub fn stream_external_del_prefix_overlaps(
        prefix: impl Display,
        subject: impl Display,
    ) -> Self {
        Self::with_args(
            codes::STREAM_EXTERNAL_DEL_PREFIX_OVERLAPS,
            &[
                ("{prefix}", prefix.to_string()),
                ("{subject}", subject.to_string()),
            ],
        )
    }

    /// 503 / 10023: "insufficient resources".
    pub fn insufficient_resources() -> Self {
        Self::from_code(codes::INSUFFICIENT_RESOURCES)
    }

    /// 400 / 10024: "stream external delivery prefix {prefix} must not contain wildcards".
    pub fn stream_invalid_external_delivery_subj(prefix: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ,
            &[("{prefix}", prefix.to_string())],
        )
    }

    /// 400 / 10025: "invalid JSON: {err}".
    pub fn invalid_json(err: impl Display) -> Self {
        Self::with_args(codes::INVALID_JSON, &[("{err}", err.to_string())])
    }

    /// 400 / 10026: "maximum consumers limit reached".
    pub fn maximum_consumers_limit() -> Self {
        Self::from_code(codes::MAXIMUM_CONSUMERS_LIMIT)
    }

    /// 400 / 10027: "maximum number of streams reached".
    pub fn maximum_streams_limit() -> Self {
        Self::from_code(codes::MAXIMUM_STREAMS_LIMIT)
    }

    /// 500 / 10028: "insufficient memory resources available".
    pub fn memory_resources_exceeded() -> Self {
        Self::from_code(codes::MEMORY_RESOURCES_EXCEEDED)
    }

    /// 500 / 10029: "{err}".
    pub fn mirror_consumer_setup_failed(err: impl Display) -> Self {
        Self::with_args(
            codes::MIRROR_CONSUMER_SETUP_FAILED,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10030: "stream mirror must have max message size >= source".
    pub fn mirror_max_message_size_too_big() -> Self {
        Self::from_code(codes::MIRROR_MAX_MESSAGE_SIZE_TOO_BIG)
    }

    /// 400 / 10031: "stream mirrors can not also contain other sources".
    pub fn mirror_with_sources() -> Self {
        Self::from_code(codes::MIRROR_WITH_SOURCES)
    }

    /// 400 / 10032: "stream mirrors can not have both start seq and start time configured".
    pub fn mirror_with_start_seq_and_time() -> Self {
        Self::from_code(codes::MIRROR_WITH_START_SEQ_AND_TIME)
    }

    /// 400 / 10033: "stream mirrors can not contain filtered subjects".
    pub fn mirror_with_subject_filters() -> Self {
        Self::from_code(codes::MIRROR_WITH_SUBJECT_FILTERS)
    }

    /// 400 / 10034: "stream mirrors can not contain subjects".
    pub fn mirror_with_subjects() -> Self {
        Self::from_code(codes::MIRROR_WITH_SUBJECTS)
    }

    /// 503 / 10035: "account not found".
    pub fn no_account() -> Self {
        Self::from_code(codes::NO_ACCOUNT)
    }

    /// 503 / 10036: "not currently supported in clustered mode".
    pub fn cluster_un_support_feature() -> Self {
        Self::from_code(codes::CLUSTER_UN_SUPPORT_FEATURE)
    }

    /// 404 / 10037: "no message found".
    pub fn no_message_found() -> Self {
        Self::from_code(codes::NO_MESSAGE_FOUND)
    }

    /// 400 / 10038: "expected an empty request payload".
    pub fn not_empty_request() -> Self {
        Self::from_code(codes::NOT_EMPTY_REQUEST)
    }

    /// 503 / 10039: "JetStream not enabled for account".
    pub fn not_enabled_for_account() -> Self {
        Self::from_code(codes::NOT_ENABLED_FOR_ACCOUNT)
    }

    /// 400 / 10040: "peer not a member".
    pub fn cluster_peer_not_member() -> Self {
        Self::from_code(codes::CLUSTER_PEER_NOT_MEMBER)
    }

    /// 500 / 10041: "{err}".
    pub fn raft_general(err: impl Display) -> Self {
        Self::with_args(codes::RAFT_GENERAL, &[("{err}", err.to_string())])
    }

    /// 500 / 10042: "JetStream unable to subscribe to restore snapshot {subject}: {err}".
    pub fn restore_subscribe_failed(subject: impl Display, err: impl Display) -> Self {
        Self::with_args(
            codes::RESTORE_SUBSCRIBE_FAILED,
            &[
                ("{subject}", subject.to_string()),
                ("{err}", err.to_string()),
            ],
        )
    }

    /// 400 / 10043: "sequence {seq} not found".
    pub fn sequence_not_found(seq: impl Display) -> Self {
        Self::with_args(codes::SEQUENCE_NOT_FOUND, &[("{seq}", seq.to_string())])
    }

    /// 400 / 10044: "server is not a member of the cluster".
    pub fn cluster_server_not_member() -> Self {
        Self::from_code(codes::CLUSTER_SERVER_NOT_MEMBER)
    }

    /// 500 / 10045: "{err}".
    pub fn source_consumer_setup_failed(err: impl Display) -> Self {
        Self::with_args(
            codes::SOURCE_CONSUMER_SETUP_FAILED,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10046: "stream source must have max message size >= target".
    pub fn source_max_message_size_too_big() -> Self {
        Self::from_code(codes::SOURCE_MAX_MESSAGE_SIZE_TOO_BIG)
    }

    /// 500 / 10047: "insufficient storage resources available".
    pub fn storage_resources_exceeded() -> Self {
        Self::from_code(codes::STORAGE_RESOURCES_EXCEEDED)
    }

    /// 500 / 10048: "{err}".
    pub fn stream_assignment(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_ASSIGNMENT, &[("{err}", err.to_string())])
    }

    /// 500 / 10049: "{err}".
    pub fn stream_create(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_CREATE, &[("{err}", err.to_string())])
    }

    /// 500 / 10050: "{err}".
    pub fn stream_delete(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_DELETE, &[("{err}", err.to_string())])
    }

    /// 500 / 10051: "{err}".
    pub fn stream_general(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_GENERAL, &[("{err}", err.to_string())])
    }

    /// 500 / 10052: "{err}".
    pub fn stream_invalid_config(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_INVALID_CONFIG, &[("{err}", err.to_string())])
    }

    /// 500 / 10053: "{err}".
    pub fn stream_limits(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_LIMITS, &[("{err}", err.to_string())])
    }

    /// 400 / 10054: "message size exceeds maximum allowed".
    pub fn stream_message_exceeds_maximum() -> Self {
        Self::from_code(codes::STREAM_MESSAGE_EXCEEDS_MAXIMUM)
    }

    /// 400 / 10055: "stream mirror configuration can not be updated".
    pub fn stream_mirror_not_updatable() -> Self {
        Self::from_code(codes::STREAM_MIRROR_NOT_UPDATABLE)
    }

    /// 400 / 10056: "stream name in subject does not match request".
    pub fn stream_mismatch() -> Self {
        Self::from_code(codes::STREAM_MISMATCH)
    }

    /// 500 / 10057: "{err}".
    pub fn stream_msg_delete_failed(err: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_MSG_DELETE_FAILED,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10058: "stream name already in use with a different configuration".
    pub fn stream_name_exist() -> Self {
        Self::from_code(codes::STREAM_NAME_EXIST)
    }

    /// 404 / 10059: "stream not found".
    pub fn stream_not_found() -> Self {
        Self::from_code(codes::STREAM_NOT_FOUND)
    }

    /// 400 / 10060: "expected stream does not match".
    pub fn stream_not_match() -> Self {
        Self::from_code(codes::STREAM_NOT_MATCH)
    }

    /// 400 / 10061: "Replicas configuration can not be updated".
    pub fn stream_replicas_not_updatable() -> Self {
        Self::from_code(codes::STREAM_REPLICAS_NOT_UPDATABLE)
    }

    /// 500 / 10062: "restore failed: {err}".
    pub fn stream_restore(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_RESTORE, &[("{err}", err.to_string())])
    }

    /// 503 / 10063: "expected stream sequence does not match".
    pub fn stream_sequence_not_match() -> Self {
        Self::from_code(codes::STREAM_SEQUENCE_NOT_MATCH)
    }

    /// 500 / 10064: "snapshot failed: {err}".
    pub fn stream_snapshot(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_SNAPSHOT, &[("{err}", err.to_string())])
    }

    /// 400 / 10065: "subjects overlap with an existing stream".
    pub fn stream_subject_overlap() -> Self {
        Self::from_code(codes::STREAM_SUBJECT_OVERLAP)
    }

    /// 500 / 10066: "{err}".
    pub fn stream_template_create(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_TEMPLATE_CREATE, &[("{err}", err.to_string())])
    }

    /// 500 / 10067: "{err}".
    pub fn stream_template_delete(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_TEMPLATE_DELETE, &[("{err}", err.to_string())])
    }

    /// 404 / 10068: "template not found".
    pub fn stream_template_not_found() -> Self {
        Self::from_code(codes::STREAM_TEMPLATE_NOT_FOUND)
    }

    /// 500 / 10069: "{err}".
    pub fn stream_update(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_UPDATE, &[("{err}", err.to_string())])
    }

    /// 400 / 10070: "wrong last msg ID: {id}".
    pub fn stream_wrong_last_msg_id(id: impl Display) -> Self {
        Self::with_args(codes::STREAM_WRONG_LAST_MSG_ID, &[("{id}", id.to_string())])
    }

    /// 400 / 10071: "wrong last sequence: {seq}".
    pub fn stream_wrong_last_sequence(seq: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_WRONG_LAST_SEQUENCE,
            &[("{seq}", seq.to_string())],
        )
    }

    /// 500 / 10072: "JetStream unable to open temp storage for restore".
    pub fn temp_storage_failed() -> Self {
        Self::from_code(codes::TEMP_STORAGE_FAILED)
    }

    /// 400 / 10073: "template name in subject does not match request".
    pub fn template_name_not_match_subject() -> Self {
        Self::from_code(codes::TEMPLATE_NAME_NOT_MATCH_SUBJECT)
    }

    /// 500 / 10074: "replicas > 1 not supported in non-clustered mode".
    pub fn stream_replicas_not_supported() -> Self {
        Self::from_code(codes::STREAM_REPLICAS_NOT_SUPPORTED)
    }

    /// 503 / 10075: "peer remap failed".
    pub fn peer_remap() -> Self {
        Self::from_code(codes::PEER_REMAP)
    }

    /// 503 / 10076: "JetStream not enabled".
    pub fn not_enabled() -> Self {
        Self::from_code(codes::NOT_ENABLED)
    }

    /// 503 / 10077: "{err}".
    pub fn stream_store_failed(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_STORE_FAILED, &[("{err}", err.to_string())])
    }

    /// 400 / 10078: "consumer config required".
    pub fn consumer_config_required() -> Self {
        Self::from_code(codes::CONSUMER_CONFIG_REQUIRED)
    }

    /// 400 / 10079: "consumer deliver subject has wildcards".
    pub fn consumer_deliver_to_wildcards() -> Self {
        Self::from_code(codes::CONSUMER_DELIVER_TO_WILDCARDS)
    }

    /// 400 / 10080: "consumer in push mode can not set max waiting".
    pub fn consumer_push_max_waiting() -> Self {
        Self::from_code(codes::CONSUMER_PUSH_MAX_WAITING)
    }

    /// 400 / 10081: "consumer deliver subject forms a cycle".
    pub fn consumer_deliver_cycle() -> Self {
        Self::from_code(codes::CONSUMER_DELIVER_CYCLE)
    }

    /// 400 / 10082: "consumer requires ack policy for max ack pending".
    pub fn consumer_max_pending_ack_policy_required() -> Self {
        Self::from_code(codes::CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED)
    }

    /// 400 / 10083: "consumer idle heartbeat needs to be >= 100ms".
    pub fn consumer_small_heartbeat() -> Self {
        Self::from_code(codes::CONSUMER_SMALL_HEARTBEAT)
    }

    /// 400 / 10084: "consumer in pull mode requires explicit ack policy on workqueue stream".
    pub fn consumer_pull_requires_ack() -> Self {
        Self::from_code(codes::CONSUMER_PULL_REQUIRES_ACK)
    }

    /// 400 / 10085: "consumer in pull mode requires a durable name".
    pub fn consumer_pull_not_durable() -> Self {
        Self::from_code(codes::CONSUMER_PULL_NOT_DURABLE)
    }

    /// 400 / 10086: "consumer in pull mode can not have rate limit set".
    pub fn consumer_pull_with_rate_limit() -> Self {
        Self::from_code(codes::CONSUMER_PULL_WITH_RATE_LIMIT)
    }

    /// 400 / 10087: "consumer max waiting needs to be positive".
    pub fn consumer_max_waiting_negative() -> Self {
        Self::from_code(codes::CONSUMER_MAX_WAITING_NEGATIVE)
    }

    /// 400 / 10088: "consumer idle heartbeat requires a push based consumer".
    pub fn consumer_hb_requires_push() -> Self {
        Self::from_code(codes::CONSUMER_HB_REQUIRES_PUSH)
    }

    /// 400 / 10089: "consumer flow control requires a push based consumer".
    pub fn consumer_fc_requires_push() -> Self {
        Self::from_code(codes::CONSUMER_FC_REQUIRES_PUSH)
    }

    /// 400 / 10090: "consumer direct requires a push based consumer".
    pub fn consumer_direct_requires_push() -> Self {
        Self::from_code(codes::CONSUMER_DIRECT_REQUIRES_PUSH)
    }

    /// 400 / 10091: "consumer direct requires an ephemeral consumer".
    pub fn consumer_direct_requires_ephemeral() -> Self {
        Self::from_code(codes::CONSUMER_DIRECT_REQUIRES_EPHEMERAL)
    }

    /// 400 / 10092: "consumer direct on a mapped consumer".
    pub fn consumer_on_mapped() -> Self {
        Self::from_code(codes::CONSUMER_ON_MAPPED)
    }

    /// 400 / 10093: "consumer filter subject is not a valid subset of the interest subjects".
    pub fn consumer_filter_not_subset() -> Self {
        Self::from_code(codes::CONSUMER_FILTER_NOT_SUBSET)
    }

    /// 400 / 10094: "{err}".
    pub fn consumer_invalid_policy(err: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_INVALID_POLICY,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10095: "failed to parse consumer sampling configuration: {err}".
    pub fn consumer_invalid_sampling(err: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_INVALID_SAMPLING,
            &[("{err}", err.to_string())],
        )
    }

    /// 500 / 10096: "stream not valid".
    pub fn stream_invalid() -> Self {
        Self::from_code(codes::STREAM_INVALID)
    }

    /// 400 / 10097: "header size exceeds maximum allowed of 64k".
    pub fn stream_header_exceeds_maximum() -> Self {
        Self::from_code(codes::STREAM_HEADER_EXCEEDS_MAXIMUM)
    }

    /// 400 / 10098: "workqueue stream requires explicit ack".
    pub fn consumer_wq_requires_explicit_ack() -> Self {
        Self::from_code(codes::CONSUMER_WQ_REQUIRES_EXPLICIT_ACK)
    }

    /// 400 / 10099: "multiple non-filtered consumers not allowed on workqueue stream".
    pub fn consumer_wq_multiple_unfiltered() -> Self {
        Self::from_code(codes::CONSUMER_WQ_MULTIPLE_UNFILTERED)
    }

    /// 400 / 10100: "filtered consumer not unique on workqueue stream".
    pub fn consumer_wq_consumer_not_unique() -> Self {
        Self::from_code(codes::CONSUMER_WQ_CONSUMER_NOT_UNIQUE)
    }

    /// 400 / 10101: "consumer must be deliver all on workqueue stream".
    pub fn consumer_wq_consumer_not_deliver_all() -> Self {
        Self::from_code(codes::CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL)
    }

    /// 400 / 10102: "consumer name is too long, maximum allowed is {max}".
    pub fn consumer_name_too_long(max: impl Display) -> Self {
        Self::with_args(codes::CONSUMER_NAME_TOO_LONG, &[("{max}", max.to_string())])
    }

    /// 400 / 10103: "durable name can not contain '.', '*', '>'".
    pub fn consumer_bad_durable_name() -> Self {
        Self::from_code(codes::CONSUMER_BAD_DURABLE_NAME)
    }

    /// 500 / 10104: "error creating store for consumer: {err}".
    pub fn consumer_store_failed(err: impl Display) -> Self {
        Self::with_args(codes::CONSUMER_STORE_FAILED, &[("{err}", err.to_string())])
    }

    /// 400 / 10105: "consumer already exists and is still active".
    pub fn consumer_existing_active() -> Self {
        Self::from_code(codes::CONSUMER_EXISTING_ACTIVE)
    }

    /// 400 / 10106: "consumer replacement durable config not the same".
    pub fn consumer_replacement_with_different_name() -> Self {
        Self::from_code(codes::CONSUMER_REPLACEMENT_WITH_DIFFERENT_NAME)
    }

    /// 400 / 10107: "consumer description is too long, maximum allowed is {max}".
    pub fn consumer_description_too_long(max: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_DESCRIPTION_TOO_LONG,
            &[("{max}", max.to_string())],
        )
    }

    /// 400 / 10108: "consumer with flow control also needs heartbeats".
    pub fn consumer_with_flow_control_needs_heartbeats() -> Self {
        Self::from_code(codes::CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS)
    }

    /// 400 / 10109: "invalid operation on sealed stream".
    pub fn stream_sealed() -> Self {
        Self::from_code(codes::STREAM_SEALED)
    }

    /// 500 / 10110: "{err}".
    pub fn stream_purge_failed(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_PURGE_FAILED, &[("{err}", err.to_string())])
    }

    /// 500 / 10111: "{err}".
    pub fn stream_rollup_failed(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_ROLLUP_FAILED, &[("{err}", err.to_string())])
    }

    /// 400 / 10112: "invalid push consumer deliver subject".
    pub fn consumer_invalid_deliver_subject() -> Self {
        Self::from_code(codes::CONSUMER_INVALID_DELIVER_SUBJECT)
    }

    /// 400 / 10113: "account requires a stream config to have max bytes set".
    pub fn stream_max_bytes_required() -> Self {
        Self::from_code(codes::STREAM_MAX_BYTES_REQUIRED)
    }

    /// 400 / 10114: "consumer max request batch needs to be > 0".
    pub fn consumer_max_request_batch_negative() -> Self {
        Self::from_code(codes::CONSUMER_MAX_REQUEST_BATCH_NEGATIVE)
    }

    /// 400 / 10115: "consumer max request expires needs to be >= 1ms".
    pub fn consumer_max_request_expires_too_small() -> Self {
        Self::from_code(codes::CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL)
    }

    /// 400 / 10116: "max deliver is required to be > length of backoff values".
    pub fn consumer_max_deliver_backoff() -> Self {
        Self::from_code(codes::CONSUMER_MAX_DELIVER_BACKOFF)
    }

    /// 500 / 10117: "subject details would exceed maximum allowed".
    pub fn stream_info_max_subjects() -> Self {
        Self::from_code(codes::STREAM_INFO_MAX_SUBJECTS)
    }

    /// 500 / 10118: "stream is offline".
    pub fn stream_offline() -> Self {
        Self::from_code(codes::STREAM_OFFLINE)
    }

    /// 500 / 10119: "consumer is offline".
    pub fn consumer_offline() -> Self {
        Self::from_code(codes::CONSUMER_OFFLINE)
    }

    /// 400 / 10120: "no JetStream default or applicable tiered limit present".
    pub fn no_limits() -> Self {
        Self::from_code(codes::NO_LIMITS)
    }

    /// 400 / 10121: "consumer max ack pending exceeds system limit of {limit}".
    pub fn consumer_max_pending_ack_excess(limit: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_MAX_PENDING_ACK_EXCESS,
            &[("{limit}", limit.to_string())],
        )
    }

    /// 400 / 10122: "stream max bytes exceeds account limit max stream bytes".
    pub fn stream_max_stream_bytes_exceeded() -> Self {
        Self::from_code(codes::STREAM_MAX_STREAM_BYTES_EXCEEDED)
    }

    /// 400 / 10123: "can not move and scale a stream in a single update".
    pub fn stream_move_and_scale() -> Self {
        Self::from_code(codes::STREAM_MOVE_AND_SCALE)
    }

    /// 400 / 10124: "stream move already in progress".
    pub fn stream_move_in_progress() -> Self {
        Self::from_code(codes::STREAM_MOVE_IN_PROGRESS)
    }

    /// 400 / 10125: "consumer max request batch exceeds server limit of {limit}".
    pub fn consumer_max_request_batch_exceeded(limit: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_MAX_REQUEST_BATCH_EXCEEDED,
            &[("{limit}", limit.to_string())],
        )
    }

    /// 400 / 10126: "consumer config replica count exceeds parent stream".
    pub fn consumer_replicas_exceeds_stream() -> Self {
        Self::from_code(codes::CONSUMER_REPLICAS_EXCEEDS_STREAM)
    }

    /// 400 / 10127: "Consumer name can not contain path separators".
    pub fn consumer_name_contains_path_separators() -> Self {
        Self::from_code(codes::CONSUMER_NAME_CONTAINS_PATH_SEPARATORS)
    }

    /// 400 / 10128: "Stream name can not contain path separators".
    pub fn stream_name_contains_path_separators() -> Self {
        Self::from_code(codes::STREAM_NAME_CONTAINS_PATH_SEPARATORS)
    }

    /// 400 / 10129: "stream reconfiguration not in progress".
    pub fn stream_reconfigure_not_in_progress() -> Self {
        Self::from_code(codes::STREAM_RECONFIGURE_NOT_IN_PROGRESS)
    }

    /// 400 / 10130: "stream name already in use, cannot restore".
    pub fn stream_name_exist_restore_failed() -> Self {
        Self::from_code(codes::STREAM_NAME_EXIST_RESTORE_FAILED)
    }

    /// 400 / 10131: "Consumer create request did not match filtered subject from create subject".
    pub fn consumer_create_filter_subject_mismatch() -> Self {
        Self::from_code(codes::CONSUMER_CREATE_FILTER_SUBJECT_MISMATCH)
    }

    /// 400 / 10132: "Consumer Durable and Name have to be equal if both are provided".
    pub fn consumer_create_durable_and_name_mismatch() -> Self {
        Self::from_code(codes::CONSUMER_CREATE_DURABLE_AND_NAME_MISMATCH)
    }

    /// 400 / 10133: "replicas count cannot be negative".
    pub fn replicas_count_cannot_be_negative() -> Self {
        Self::from_code(codes::REPLICAS_COUNT_CANNOT_BE_NEGATIVE)
    }

    /// 400 / 10134: "consumer config replicas must match interest retention stream's replicas".
    pub fn consumer_replicas_should_match_stream() -> Self {
        Self::from_code(codes::CONSUMER_REPLICAS_SHOULD_MATCH_STREAM)
    }

    /// 400 / 10135: "consumer metadata exceeds maximum size of {limit}".
    pub fn consumer_metadata_length(limit: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_METADATA_LENGTH,
            &[("{limit}", limit.to_string())],
        )
    }

    /// 400 / 10136: "consumer cannot have both FilterSubject and FilterSubjects specified".
    pub fn consumer_duplicate_filter_subjects() -> Self {
        Self::from_code(codes::CONSUMER_DUPLICATE_FILTER_SUBJECTS)
    }

    /// 400 / 10137: "consumer with multiple subject filters cannot use subject based API".
    pub fn consumer_multiple_filters_not_allowed() -> Self {
        Self::from_code(codes::CONSUMER_MULTIPLE_FILTERS_NOT_ALLOWED)
    }

    /// 400 / 10138: "consumer subject filters cannot overlap".
    pub fn consumer_overlapping_subject_filters() -> Self {
        Self::from_code(codes::CONSUMER_OVERLAPPING_SUBJECT_FILTERS)
    }

    /// 400 / 10139: "consumer filter in FilterSubjects cannot be empty".
    pub fn consumer_empty_filter() -> Self {
        Self::from_code(codes::CONSUMER_EMPTY_FILTER)
    }

    /// 400 / 10140: "duplicate source configuration detected".
    pub fn source_duplicate_detected() -> Self {
        Self::from_code(codes::SOURCE_DUPLICATE_DETECTED)
    }

    /// 400 / 10141: "sourced stream name is invalid".
    pub fn source_invalid_stream_name() -> Self {
        Self::from_code(codes::SOURCE_INVALID_STREAM_NAME)
    }

    /// 400 / 10142: "mirrored stream name is invalid".
    pub fn mirror_invalid_stream_name() -> Self {
        Self::from_code(codes::MIRROR_INVALID_STREAM_NAME)
    }

    /// 400 / 10143: "stream mirrors can not have first sequence configured".
    pub fn mirror_with_first_seq() -> Self {
        Self::from_code(codes::MIRROR_WITH_FIRST_SEQ)
    }

    /// 400 / 10144: "source with multiple subject transforms cannot also have a single subject filter".
    pub fn source_multiple_filters_not_allowed() -> Self {
        Self::from_code(codes::SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED)
    }

    /// 400 / 10145: "source transform source: {err}".
    pub fn source_invalid_subject_filter(err: impl Display) -> Self {
        Self::with_args(
            codes::SOURCE_INVALID_SUBJECT_FILTER,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10146: "source transform: {err}".
    pub fn source_invalid_transform_destination(err: impl Display) -> Self {
        Self::with_args(
            codes::SOURCE_INVALID_TRANSFORM_DESTINATION,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10147: "source filters can not overlap".
    pub fn source_overlapping_subject_filters() -> Self {
        Self::from_code(codes::SOURCE_OVERLAPPING_SUBJECT_FILTERS)
    }

    /// 400 / 10148: "consumer already exists".
    pub fn consumer_already_exists() -> Self {
        Self::from_code(codes::CONSUMER_ALREADY_EXISTS)
    }

    /// 400 / 10149: "consumer does not exist".
    pub fn consumer_does_not_exist() -> Self {
        Self::from_code(codes::CONSUMER_DOES_NOT_EXIST)
    }

    /// 400 / 10150: "mirror with multiple subject transforms cannot also have a single subject filter".
    pub fn mirror_multiple_filters_not_allowed() -> Self {
        Self::from_code(codes::MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED)
    }

    /// 400 / 10151: "mirror transform source: {err}".
    pub fn mirror_invalid_subject_filter(err: impl Display) -> Self {
        Self::with_args(
            codes::MIRROR_INVALID_SUBJECT_FILTER,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10152: "mirror subject filters can not overlap".
    pub fn mirror_overlapping_subject_filters() -> Self {
        Self::from_code(codes::MIRROR_OVERLAPPING_SUBJECT_FILTERS)
    }

    /// 400 / 10153: "consumer inactive threshold exceeds system limit of {limit}".
    pub fn consumer_inactive_threshold_excess(limit: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_INACTIVE_THRESHOLD_EXCESS,
            &[("{limit}", limit.to_string())],
        )
    }

    /// 400 / 10154: "mirror transform: {err}".
    pub fn mirror_invalid_transform_destination(err: impl Display) -> Self {
        Self::with_args(
            codes::MIRROR_INVALID_TRANSFORM_DESTINATION,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10155: "stream transform source: {err}".
    pub fn stream_transform_invalid_source(err: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_TRANSFORM_INVALID_SOURCE,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10156: "stream transform: {err}".
    pub fn stream_transform_invalid_destination(err: impl Display) -> Self {
        Self::with_args(
            codes::STREAM_TRANSFORM_INVALID_DESTINATION,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10157: "pedantic mode: {err}".
    pub fn pedantic(err: impl Display) -> Self {
        Self::with_args(codes::PEDANTIC, &[("{err}", err.to_string())])
    }

    /// 409 / 10158: "duplicate message id is in process".
    pub fn stream_duplicate_message_conflict() -> Self {
        Self::from_code(codes::STREAM_DUPLICATE_MESSAGE_CONFLICT)
    }

    /// 400 / 10159: "Setting PriorityPolicy requires at least one PriorityGroup to be set".
    pub fn consumer_priority_policy_without_group() -> Self {
        Self::from_code(codes::CONSUMER_PRIORITY_POLICY_WITHOUT_GROUP)
    }

    /// 400 / 10160: "Provided priority group does not exist for this consumer".
    pub fn consumer_invalid_priority_group() -> Self {
        Self::from_code(codes::CONSUMER_INVALID_PRIORITY_GROUP)
    }

    /// 400 / 10161: "Group name cannot be an empty string".
    pub fn consumer_empty_group_name() -> Self {
        Self::from_code(codes::CONSUMER_EMPTY_GROUP_NAME)
    }

    /// 400 / 10162: "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters".
    pub fn consumer_invalid_group_name() -> Self {
        Self::from_code(codes::CONSUMER_INVALID_GROUP_NAME)
    }

    /// 503 / 10163: "expected last sequence per subject temporarily unavailable".
    pub fn stream_expected_last_seq_per_subject_not_ready() -> Self {
        Self::from_code(codes::STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_NOT_READY)
    }

    /// 400 / 10164: "wrong last sequence".
    pub fn stream_wrong_last_sequence_constant() -> Self {
        Self::from_code(codes::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
    }

    /// 400 / 10165: "invalid per-message TTL".
    pub fn message_ttl_invalid() -> Self {
        Self::from_code(codes::MESSAGE_TTL_INVALID)
    }

    /// 400 / 10166: "per-message TTL is disabled".
    pub fn message_ttl_disabled() -> Self {
        Self::from_code(codes::MESSAGE_TTL_DISABLED)
    }

    /// 429 / 10167: "too many requests".
    pub fn stream_too_many_requests() -> Self {
        Self::from_code(codes::STREAM_TOO_MANY_REQUESTS)
    }

    /// 400 / 10168: "message counters is disabled".
    pub fn message_incr_disabled() -> Self {
        Self::from_code(codes::MESSAGE_INCR_DISABLED)
    }

    /// 400 / 10169: "message counter increment is missing".
    pub fn message_incr_missing() -> Self {
        Self::from_code(codes::MESSAGE_INCR_MISSING)
    }

    /// 400 / 10170: "message counter has payload".
    pub fn message_incr_payload() -> Self {
        Self::from_code(codes::MESSAGE_INCR_PAYLOAD)
    }

    /// 400 / 10171: "message counter increment is invalid".
    pub fn message_incr_invalid() -> Self {
        Self::from_code(codes::MESSAGE_INCR_INVALID)
    }

    /// 400 / 10172: "message counter is broken".
    pub fn message_counter_broken() -> Self {
        Self::from_code(codes::MESSAGE_COUNTER_BROKEN)
    }

    /// 400 / 10173: "stream mirrors can not also calculate counters".
    pub fn mirror_with_counters() -> Self {
        Self::from_code(codes::MIRROR_WITH_COUNTERS)
    }

    /// 400 / 10174: "atomic publish is disabled".
    pub fn atomic_publish_disabled() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_DISABLED)
    }

    /// 400 / 10175: "atomic publish sequence is missing".
    pub fn atomic_publish_missing_seq() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_MISSING_SEQ)
    }

    /// 400 / 10176: "atomic publish batch is incomplete".
    pub fn atomic_publish_incomplete_batch() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_INCOMPLETE_BATCH)
    }

    /// 400 / 10177: "atomic publish unsupported header used: {header}".
    pub fn atomic_publish_unsupported_header_batch(header: impl Display) -> Self {
        Self::with_args(
            codes::ATOMIC_PUBLISH_UNSUPPORTED_HEADER_BATCH,
            &[("{header}", header.to_string())],
        )
    }

    /// 400 / 10178: "priority groups can not be used with push consumers".
    pub fn consumer_push_with_priority_group() -> Self {
        Self::from_code(codes::CONSUMER_PUSH_WITH_PRIORITY_GROUP)
    }

    /// 400 / 10179: "atomic publish batch ID is invalid".
    pub fn atomic_publish_invalid_batch_id() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_INVALID_BATCH_ID)
    }

    /// 412 / 10180: "min last sequence".
    pub fn stream_min_last_seq() -> Self {
        Self::from_code(codes::STREAM_MIN_LAST_SEQ)
    }

    /// 400 / 10181: "consumer ack policy invalid".
    pub fn consumer_ack_policy_invalid() -> Self {
        Self::from_code(codes::CONSUMER_ACK_POLICY_INVALID)
    }

    /// 400 / 10182: "consumer replay policy invalid".
    pub fn consumer_replay_policy_invalid() -> Self {
        Self::from_code(codes::CONSUMER_REPLAY_POLICY_INVALID)
    }

    /// 400 / 10183: "consumer ack wait needs to be positive".
    pub fn consumer_ack_wait_negative() -> Self {
        Self::from_code(codes::CONSUMER_ACK_WAIT_NEGATIVE)
    }

    /// 400 / 10184: "consumer backoff needs to be positive".
    pub fn consumer_back_off_negative() -> Self {
        Self::from_code(codes::CONSUMER_BACK_OFF_NEGATIVE)
    }

    /// 412 / 10185: "JetStream minimum api level required".
    pub fn required_api_level() -> Self {
        Self::from_code(codes::REQUIRED_API_LEVEL)
    }

    /// 400 / 10186: "stream mirrors can not also schedule messages".
    pub fn mirror_with_msg_schedules() -> Self {
        Self::from_code(codes::MIRROR_WITH_MSG_SCHEDULES)
    }

    /// 400 / 10187: "stream source can not also schedule messages".
    pub fn source_with_msg_schedules() -> Self {
        Self::from_code(codes::SOURCE_WITH_MSG_SCHEDULES)
    }

    /// 400 / 10188: "message schedules is disabled".
    pub fn message_schedules_disabled() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_DISABLED)
    }

    /// 400 / 10189: "message schedules pattern is invalid".
    pub fn message_schedules_pattern_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_PATTERN_INVALID)
    }

    /// 400 / 10190: "message schedules target is invalid".
    pub fn message_schedules_target_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_TARGET_INVALID)
    }

    /// 400 / 10191: "message schedules invalid per-message TTL".
    pub fn message_schedules_ttl_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_TTL_INVALID)
    }

    /// 400 / 10192: "message schedules invalid rollup".
    pub fn message_schedules_rollup_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_ROLLUP_INVALID)
    }

    /// 400 / 10193: "missing sequence for expected last sequence per subject".
    pub fn stream_expected_last_seq_per_subject_invalid() -> Self {
        Self::from_code(codes::STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_INVALID)
    }

    /// 500 / 10194: "stream is offline: {err}".
    pub fn stream_offline_reason(err: impl Display) -> Self {
        Self::with_args(codes::STREAM_OFFLINE_REASON, &[("{err}", err.to_string())])
    }

    /// 500 / 10195: "consumer is offline: {err}".
    pub fn consumer_offline_reason(err: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_OFFLINE_REASON,
            &[("{err}", err.to_string())],
        )
    }

    /// 400 / 10196: "consumer can not have priority groups when policy is none".
    pub fn consumer_priority_group_with_policy_none() -> Self {
        Self::from_code(codes::CONSUMER_PRIORITY_GROUP_WITH_POLICY_NONE)
    }

    /// 400 / 10197: "PinnedTTL cannot be set when PriorityPolicy is none".
    pub fn consumer_pinned_ttl_without_priority_policy_none() -> Self {
        Self::from_code(codes::CONSUMER_PINNED_TTL_WITHOUT_PRIORITY_POLICY_NONE)
    }

    /// 400 / 10198: "stream mirrors can not also use atomic publishing".
    pub fn mirror_with_atomic_publish() -> Self {
        Self::from_code(codes::MIRROR_WITH_ATOMIC_PUBLISH)
    }

    /// 400 / 10199: "atomic publish batch is too large: {size}".
    pub fn atomic_publish_too_large_batch(size: impl Display) -> Self {
        Self::with_args(
            codes::ATOMIC_PUBLISH_TOO_LARGE_BATCH,
            &[("{size}", size.to_string())],
        )
    }

    /// 400 / 10200: "atomic publish batch commit is invalid".
    pub fn atomic_publish_invalid_batch_commit() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_INVALID_BATCH_COMMIT)
    }

    /// 400 / 10201: "atomic publish batch contains duplicate message id".
    pub fn atomic_publish_contains_duplicate_message() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE)
    }

    /// 400 / 10202: "cluster member change is in progress".
    pub fn cluster_server_member_change_inflight() -> Self {
        Self::from_code(codes::CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT)
    }

    /// 400 / 10203: "message schedules source is invalid".
    pub fn message_schedules_source_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_SOURCE_INVALID)
    }

    /// 400 / 10204: "invalid reset: {err}".
    pub fn consumer_invalid_reset(err: impl Display) -> Self {
        Self::with_args(codes::CONSUMER_INVALID_RESET, &[("{err}", err.to_string())])
    }

    /// 400 / 10205: "batch publish is disabled".
    pub fn batch_publish_disabled() -> Self {
        Self::from_code(codes::BATCH_PUBLISH_DISABLED)
    }

    /// 400 / 10206: "batch publish pattern is invalid".
    pub fn batch_publish_invalid_pattern() -> Self {
        Self::from_code(codes::BATCH_PUBLISH_INVALID_PATTERN)
    }

    /// 400 / 10207: "batch publish ID is invalid".
    pub fn batch_publish_invalid_batch_id() -> Self {
        Self::from_code(codes::BATCH_PUBLISH_INVALID_BATCH_ID)
    }

    /// 400 / 10208: "batch publish ID unknown".
    pub fn batch_publish_unknown_batch_id() -> Self {
        Self::from_code(codes::BATCH_PUBLISH_UNKNOWN_BATCH_ID)
    }

    /// 400 / 10209: "stream mirrors can not also use batch publishing".
    pub fn mirror_with_batch_publish() -> Self {
        Self::from_code(codes::MIRROR_WITH_BATCH_PUBLISH)
    }

    /// 429 / 10210: "atomic publish too many inflight".
    pub fn atomic_publish_too_many_inflight() -> Self {
        Self::from_code(codes::ATOMIC_PUBLISH_TOO_MANY_INFLIGHT)
    }

    /// 429 / 10211: "batch publish too many inflight".
    pub fn batch_publish_too_many_inflight() -> Self {
        Self::from_code(codes::BATCH_PUBLISH_TOO_MANY_INFLIGHT)
    }

    /// 400 / 10212: "message schedules invalid scheduler".
    pub fn message_schedules_scheduler_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_SCHEDULER_INVALID)
    }

    /// 400 / 10213: "stream mirror consumer config is invalid".
    pub fn mirror_durable_consumer_cfg_invalid() -> Self {
        Self::from_code(codes::MIRROR_DURABLE_CONSUMER_CFG_INVALID)
    }

    /// 400 / 10214: "stream mirror consumer requires flow control ack policy".
    pub fn mirror_consumer_requires_ack_fc() -> Self {
        Self::from_code(codes::MIRROR_CONSUMER_REQUIRES_ACK_FC)
    }

    /// 400 / 10215: "stream source consumer config is invalid".
    pub fn source_durable_consumer_cfg_invalid() -> Self {
        Self::from_code(codes::SOURCE_DURABLE_CONSUMER_CFG_INVALID)
    }

    /// 400 / 10216: "duplicate stream source consumer detected".
    pub fn source_durable_consumer_duplicate_detected() -> Self {
        Self::from_code(codes::SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED)
    }

    /// 400 / 10217: "stream source consumer requires flow control ack policy".
    pub fn source_consumer_requires_ack_fc() -> Self {
        Self::from_code(codes::SOURCE_CONSUMER_REQUIRES_ACK_FC)
    }

    /// 400 / 10218: "flow control ack policy requires a push based consumer".
    pub fn consumer_ack_fc_requires_push() -> Self {
        Self::from_code(codes::CONSUMER_ACK_FC_REQUIRES_PUSH)
    }

    /// 400 / 10219: "flow control ack policy requires flow control".
    pub fn consumer_ack_fc_requires_fc() -> Self {
        Self::from_code(codes::CONSUMER_ACK_FC_REQUIRES_FC)
    }

    /// 400 / 10220: "flow control ack policy requires max ack pending".
    pub fn consumer_ack_fc_requires_max_ack_pending() -> Self {
        Self::from_code(codes::CONSUMER_ACK_FC_REQUIRES_MAX_ACK_PENDING)
    }

    /// 400 / 10221: "flow control ack policy requires unset ack wait".
    pub fn consumer_ack_fc_requires_no_ack_wait() -> Self {
        Self::from_code(codes::CONSUMER_ACK_FC_REQUIRES_NO_ACK_WAIT)
    }

    /// 400 / 10222: "flow control ack policy requires unset max deliver".
    pub fn consumer_ack_fc_requires_no_max_deliver() -> Self {
        Self::from_code(codes::CONSUMER_ACK_FC_REQUIRES_NO_MAX_DELIVER)
    }

    /// 400 / 10223: "message schedules time zone is invalid".
    pub fn message_schedules_time_zone_invalid() -> Self {
        Self::from_code(codes::MESSAGE_SCHEDULES_TIME_ZONE_INVALID)
    }

    /// 400 / 10224: "JetStream system rescue not applied: {err}".
    pub fn cluster_rescue(err: impl Display) -> Self {
        Self::with_args(codes::CLUSTER_RESCUE, &[("{err}", err.to_string())])
    }

    /// 400 / 10225: "consumer's stream identity does not match: {msg}".
    pub fn consumer_stream_identity_mismatch(msg: impl Display) -> Self {
        Self::with_args(
            codes::CONSUMER_STREAM_IDENTITY_MISMATCH,
            &[("{msg}", msg.to_string())],
        )
    }

    /// 400 / 10226: "stream reconfiguration already in progress".
    pub fn stream_reconfigure_in_progress() -> Self {
        Self::from_code(codes::STREAM_RECONFIGURE_IN_PROGRESS)
    }

    /// 400 / 10227: "message stream source header is not allowed".
    pub fn message_source_hdr_not_allowed() -> Self {
        Self::from_code(codes::MESSAGE_SOURCE_HDR_NOT_ALLOWED)
    }
}
