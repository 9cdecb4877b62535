//! The one error type of the HTTP shim and its mapping to Consul's status codes and
//! plain-text bodies (spec §1.4). Internal causes are logged here, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::service::ServiceError;

#[derive(Debug)]
pub enum HttpError {
    /// 400 with Consul's text.
    BadRequest(String),
    /// 413 with Consul's text.
    TooLarge(String),
    /// Any other status with a text body.
    Status(StatusCode, String),
    Service(ServiceError),
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> Self {
        HttpError::Service(e)
    }
}

pub fn text(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            HttpError::BadRequest(m) => text(StatusCode::BAD_REQUEST, m),
            HttpError::TooLarge(m) => text(StatusCode::PAYLOAD_TOO_LARGE, m),
            HttpError::Status(code, m) => text(code, m),
            HttpError::Service(e) => match e {
                ServiceError::InvalidArgument(m) => text(StatusCode::BAD_REQUEST, m),
                ServiceError::TooLarge(m) => text(StatusCode::PAYLOAD_TOO_LARGE, m),
                ServiceError::NotFound(m) => text(StatusCode::NOT_FOUND, m),
                ServiceError::NoPathToDatacenter => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ServiceError::NoPathToDatacenter.to_string(),
                ),
                // Consul answers 500 with the RPC error text (e.g. "No cluster leader").
                ServiceError::Unavailable(m)
                | ServiceError::OutcomeUnknown(m)
                | ServiceError::Rejected(m)
                | ServiceError::NoSpace(m) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
                ServiceError::Internal(m) => {
                    tracing::error!(error = %m, "internal error");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error; see the agent log".into(),
                    )
                }
            },
        }
    }
}
