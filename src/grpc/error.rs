//! The one mapping from service errors to gRPC status codes.

use tonic::Status;

use crate::service::ServiceError;

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidArgument(m) | ServiceError::TooLarge(m) => {
                Status::invalid_argument(m)
            }
            ServiceError::NoPathToDatacenter => Status::invalid_argument(e.to_string()),
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::NoSpace(m) => Status::resource_exhausted(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::Rejected(m) => Status::failed_precondition(m),
            ServiceError::OutcomeUnknown(m) => Status::unknown(m),
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error; see the server log")
            }
        }
    }
}
