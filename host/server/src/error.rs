//! API errors: a status and a JSON body `{"error": {"code", "message", "field"?}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error reply.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `unauthorized`.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, if any (e.g. `[2].type`, `limit`).
    pub field: Option<String>,
}

impl ApiError {
    /// 400 about `field`.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 400 without a single field to blame.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            field: None,
        }
    }

    /// 401: no or unknown token.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: None,
        }
    }

    /// 403: the token's role does not allow the request.
    pub fn forbidden(message: String) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message,
            field: None,
        }
    }

    /// 403 about `field`: the caller may not write what it sent there.
    pub fn forbidden_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 503: the server is at a limit; try again shortly.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: message.into(),
            field: None,
        }
    }

    /// 404 for `what`.
    pub fn not_found(what: String) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: what,
            field: None,
        }
    }

    /// 500; the message is logged and returned.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.to_string(),
            field: None,
        }
    }

    /// An error with a status chosen by the caller (e.g. 413 from the body limit).
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: match status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::CONFLICT => "conflict",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::SERVICE_UNAVAILABLE => "busy",
                _ => "bad_request",
            },
            message: message.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = field.into();
        }
        let mut response =
            (self.status, axum::Json(serde_json::json!({"error": error}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<leviathan_events::StoreError> for ApiError {
    fn from(e: leviathan_events::StoreError) -> ApiError {
        match e {
            leviathan_events::StoreError::Invalid {
                index,
                field,
                message,
            } => ApiError::bad_field(format!("[{index}].{field}"), message),
            leviathan_events::StoreError::Forbidden { index, message } => {
                ApiError::forbidden_field(format!("[{index}].type"), message)
            }
            other => ApiError::internal(other),
        }
    }
}
