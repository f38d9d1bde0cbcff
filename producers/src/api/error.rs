//! [`ApiError`], the one error of the HTTP API, and its JSON body.
//!
//! Every refusal answers `{"error": {"code", "message", "requestId", "details"?}}` with its
//! status: `code` is a stable snake_case string clients can branch on, `message` is for
//! humans, `requestId` is the request's `X-Request-Id`. Server-side failures (5xx) are
//! logged with their cause and the request id; their body says only what class of failure
//! it was, never internal details.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::context::current_request_id;
use ltf_domain::usecases::UseCaseError;

/// `Retry-After` of every 503, in seconds: a database restart or a registry outage
/// usually heals within seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An HTTP error: status, stable code, message and optional structured details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_table`, `stale_version`, `invalid_json`.
    #[schema(example = "unknown_table")]
    pub code: String,
    /// Human-readable explanation.
    #[schema(example = "table tbl_x does not exist")]
    pub message: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// Structured facts about the error (field name, record index, versions…), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or unknown API key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for a path no route matches.
    pub fn no_route() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 405 for a route that exists with other methods.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept this method")
    }

    /// 500; `cause` is logged, not returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(request_id = %current_request_id(), error = %cause, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log for this request id")
    }

    /// 503; `cause` is logged, not returned.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(request_id = %current_request_id(), error = %cause, "dependency unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency (database, schema registry or a service's token endpoint) is unavailable; nothing was \
             written, retry later",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                request_id: current_request_id(),
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The HTTP status a use-case error maps to (the one place that decides it): 400 for invalid input, 404 for a missing table,
/// record, form or service, 409 for a stale version, an existing id or a connection of
/// another service or user, 413 for an oversized batch or event, 422 for credentials the service
/// refused, 502 for a token endpoint that refused the deployment's client or answered
/// nonsense, 503 when a retry may succeed, 500 otherwise.
pub fn status_of(e: &UseCaseError) -> StatusCode {
    let code = match e {
        UseCaseError::UnknownField { .. }
        | UseCaseError::WrongFieldType { .. }
        | UseCaseError::EmptyBatch
        | UseCaseError::InvalidId { .. }
        | UseCaseError::InvalidName { .. }
        | UseCaseError::InvalidFieldName { .. }
        | UseCaseError::DuplicateField(_)
        | UseCaseError::TooManyFields { .. }
        | UseCaseError::UnknownFormField { .. }
        | UseCaseError::InvalidMapping { .. }
        | UseCaseError::InvalidAutomation(_)
        | UseCaseError::MalformedCredentials(_) => 400,
        UseCaseError::UnknownTable(_)
        | UseCaseError::RecordNotFound { .. }
        | UseCaseError::UnknownForm(_)
        | UseCaseError::UnknownService(_) => 404,
        UseCaseError::StaleVersion { .. } | UseCaseError::AlreadyExists { .. } | UseCaseError::ConnectionMismatch { .. } => 409,
        UseCaseError::BatchTooLarge { .. } | UseCaseError::EventTooLarge { .. } => 413,
        UseCaseError::ExchangeRefused { error, .. } => match error.as_deref() {
            Some("invalid_client" | "unauthorized_client") => 502,
            _ => 422,
        },
        UseCaseError::TokenEndpointInvalidResponse { .. } => 502,
        _ if e.is_retryable() => 503,
        UseCaseError::TokenEndpointUnavailable { .. } => 503,
        UseCaseError::Encode { .. } | UseCaseError::Db(_) | UseCaseError::Credentials(_) => 500,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<UseCaseError> for ApiError {
    fn from(e: UseCaseError) -> ApiError {
        let status = status_of(&e);
        if status == StatusCode::BAD_GATEWAY {
            // The token endpoint refused this deployment's client or answered nonsense: the
            // message names the service and the HTTP status, no secret.
            tracing::warn!(request_id = %current_request_id(), error = %e, "token endpoint failed");
            return ApiError::new(status, "token_endpoint_failed", e.to_string());
        }
        if status.is_server_error() {
            return if status == StatusCode::SERVICE_UNAVAILABLE { ApiError::unavailable(&e) } else { ApiError::internal(&e) };
        }
        let message = e.to_string();
        let (code, details) = match &e {
            UseCaseError::UnknownTable(table) => ("unknown_table", json!({ "tableId": table })),
            UseCaseError::UnknownField { table, field, index } => {
                ("unknown_field", json!({ "tableId": table, "field": field, "index": index }))
            }
            UseCaseError::WrongFieldType { field, expected, got, index } => {
                ("wrong_field_type", json!({ "field": field, "expected": expected.as_str(), "got": got, "index": index }))
            }
            UseCaseError::EmptyBatch => ("empty_batch", Value::Null),
            UseCaseError::BatchTooLarge { size, limit } => ("batch_too_large", json!({ "size": size, "limit": limit })),
            UseCaseError::EventTooLarge { event_type, bytes, limit, field } => {
                ("event_too_large", json!({ "eventType": event_type, "bytes": bytes, "limit": limit, "field": field }))
            }
            UseCaseError::RecordNotFound { table, record_id } => {
                ("record_not_found", json!({ "tableId": table, "recordId": record_id }))
            }
            UseCaseError::StaleVersion { record_id, expected, actual } => {
                ("stale_version", json!({ "recordId": record_id, "expectedVersion": expected, "actualVersion": actual }))
            }
            UseCaseError::InvalidId { entity, .. } => ("invalid_id", json!({ "entity": entity })),
            UseCaseError::InvalidName { entity, .. } => ("invalid_name", json!({ "entity": entity })),
            UseCaseError::InvalidFieldName { index, .. } => ("invalid_field_name", json!({ "index": index })),
            UseCaseError::DuplicateField(field) => ("duplicate_field", json!({ "field": field })),
            UseCaseError::TooManyFields { count, limit } => ("too_many_fields", json!({ "count": count, "limit": limit })),
            UseCaseError::AlreadyExists { entity, id } => ("already_exists", json!({ "entity": entity, "id": id })),
            UseCaseError::UnknownForm(form) => ("unknown_form", json!({ "formId": form })),
            UseCaseError::InvalidAutomation(e) => ("invalid_automation", json!({ "key": e.key })),
            UseCaseError::UnknownFormField { form, field } => ("unknown_field", json!({ "formId": form, "field": field })),
            UseCaseError::InvalidMapping { form_field, table_field, .. } => {
                ("invalid_mapping", json!({ "formField": form_field, "tableField": table_field }))
            }
            UseCaseError::UnknownService(service) => ("unknown_service", json!({ "service": service })),
            UseCaseError::MalformedCredentials(_) => ("malformed_credentials", Value::Null),
            UseCaseError::ConnectionMismatch { connection_id } => {
                ("connection_mismatch", json!({ "connectionId": connection_id }))
            }
            UseCaseError::ExchangeRefused { service, status, error } => {
                ("credentials_refused", json!({ "service": service, "tokenEndpointStatus": status, "oauthError": error }))
            }
            _ => ("invalid_request", Value::Null),
        };
        let err = ApiError::new(status, code, message);
        if details.is_null() {
            err
        } else {
            err.with_details(details)
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match &r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("invalid_json", r.body_text()),
            JsonRejection::JsonDataError(_) => ApiError::bad_request("invalid_body", r.body_text()),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the configured limit",
            ),
            _ => ApiError::bad_request("invalid_body", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        if r.status().is_server_error() {
            return ApiError::internal(&r.body_text());
        }
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltf_domain::store::tables::FieldType;

    #[test]
    fn use_case_errors_keep_their_status_and_get_a_code() {
        let e = ApiError::from(UseCaseError::UnknownTable("x".into()));
        assert_eq!((e.status(), e.code(), e.message()), (StatusCode::NOT_FOUND, "unknown_table", "table x does not exist"));
        let e = ApiError::from(UseCaseError::StaleVersion { record_id: "r".into(), expected: 1, actual: 2 });
        assert_eq!((e.status(), e.code()), (StatusCode::CONFLICT, "stale_version"));
        assert_eq!(e.details, Some(json!({"recordId": "r", "expectedVersion": 1, "actualVersion": 2})));
        let e = ApiError::from(UseCaseError::BatchTooLarge { size: 3, limit: 2 });
        assert_eq!((e.status(), e.code()), (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"));
        let e = ApiError::from(UseCaseError::WrongFieldType {
            field: "n".into(),
            expected: FieldType::Integer,
            got: "string".into(),
            index: 4,
        });
        assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "wrong_field_type"));
        assert_eq!(e.details.as_ref().and_then(|d| d.get("index")), Some(&json!(4)));
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let e = ApiError::from(UseCaseError::Db(sqlx::Error::RowNotFound));
        assert_eq!((e.status(), e.code()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
        assert!(!e.message().contains("row"), "{}", e.message());
        let e = ApiError::from(UseCaseError::Db(sqlx::Error::PoolTimedOut));
        assert_eq!((e.status(), e.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    }
}

#[cfg(test)]
mod usecase_error_tests {
    use super::*;
    use ltf_domain::store::tables::FieldType;
    use ltf_domain::usecases::MappingFault;

    trait Status {
        fn status(&self) -> u16;
    }

    impl Status for UseCaseError {
        fn status(&self) -> u16 {
            status_of(self).as_u16()
        }
    }

    #[test]
    fn errors_map_to_http_classes() {
        let stale = UseCaseError::StaleVersion { record_id: "r".into(), expected: 1, actual: 2 };
        assert!(stale.is_conflict());
        assert_eq!(stale.status(), 409);
        assert_eq!(UseCaseError::UnknownTable("t".into()).status(), 404);
        assert_eq!(UseCaseError::EmptyBatch.status(), 400);
        assert_eq!(UseCaseError::BatchTooLarge { size: 2, limit: 1 }.status(), 413);
        assert_eq!(UseCaseError::Db(sqlx::Error::PoolTimedOut).status(), 503);
        assert_eq!(UseCaseError::Db(sqlx::Error::RowNotFound).status(), 500);
        assert!(!UseCaseError::EmptyBatch.is_conflict());
        let e =
            UseCaseError::WrongFieldType { field: "age".into(), expected: FieldType::Integer, got: "string".into(), index: 3 };
        assert_eq!(e.to_string(), "field `age` is of type integer, got string (record 3 of the request)");
    }

    #[test]
    fn form_and_connection_errors_map_to_http_classes() {
        let exists = UseCaseError::AlreadyExists { entity: "table", id: "t".into() };
        assert!(exists.is_conflict());
        assert_eq!(exists.status(), 409);
        assert_eq!(UseCaseError::UnknownForm("f".into()).status(), 404);
        assert_eq!(UseCaseError::UnknownService("s".into()).status(), 404);
        assert_eq!(UseCaseError::DuplicateField("a".into()).status(), 400);
        assert_eq!(UseCaseError::TooManyFields { count: 201, limit: 200 }.status(), 400);
        let mapping = UseCaseError::InvalidMapping {
            form_field: "a".into(),
            table_field: "b".into(),
            fault: MappingFault::IncompatibleTypes { from: FieldType::Text, to: FieldType::Integer },
        };
        assert_eq!(mapping.status(), 400);
        assert_eq!(
            mapping.to_string(),
            "field mapping `a` -> `b`: values of type text cannot be stored in a field of type integer"
        );
        let refused = |error: Option<&str>| UseCaseError::ExchangeRefused {
            service: "github".into(),
            status: 400,
            error: error.map(str::to_owned),
        };
        assert_eq!(refused(Some("invalid_grant")).status(), 422);
        assert_eq!(refused(None).status(), 422);
        assert_eq!(refused(Some("invalid_client")).status(), 502);
        assert!(!refused(Some("invalid_grant")).is_retryable());
        assert_eq!(refused(Some("invalid_grant")).to_string(), "github refused the credentials (HTTP 400, error invalid_grant)");
        let down = UseCaseError::TokenEndpointUnavailable { service: "github".into(), reason: "timed out".into() };
        assert!(down.is_retryable());
        assert_eq!(down.status(), 503);
        assert_eq!(UseCaseError::TokenEndpointInvalidResponse { service: "s".into(), status: 302 }.status(), 502);
        assert_eq!(UseCaseError::ConnectionMismatch { connection_id: "c".into() }.status(), 409);
        assert_eq!(UseCaseError::MalformedCredentials("redirectUri is not a URL").status(), 400);
    }
}
