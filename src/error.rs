//! The two error families and how they look from outside.
//!
//! Owns: [`GatewayError`], every failure a request can meet, with the status, body and
//! `x-amzn-ErrorType` API Gateway answers for it (one table, here); and [`ConfigError`], a
//! configuration problem with the location of the field that caused it. Must not: log or
//! decide when an error happens; the pipeline does that.

use std::fmt;

use crate::http::Reply;

/// A failure that ends a request with a gateway-generated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// No resource matches the path, the method is not deployed on it, or the stage is wrong.
    MissingAuthenticationToken,
    /// The request body is larger than the configured limit.
    RequestTooLarge,
    /// The Lambda Invoke API did not answer within `timeoutInMillis`.
    IntegrationTimeout,
    /// The Lambda endpoint could not be reached (connection refused, reset, no upstream).
    IntegrationUnreachable,
    /// An HTTP backend could not be reached (connection refused or reset, TLS failure), or
    /// its answer is larger than `limits.maxResponseBytes`.
    BackendFailed,
    /// The Lambda Invoke API rejected the call (throttled, not found, access denied, ...).
    InvokeRejected,
    /// The function ran and failed (`X-Amz-Function-Error`, or an emulator's HTTP 500).
    FunctionError,
    /// The function's output is not a valid Lambda proxy response.
    MalformedProxyResponse,
    /// A binary response body could not be base64-decoded.
    BinaryDecodeFailed,
    /// The method's integration type is not served by this gateway.
    IntegrationNotSupported,
    /// `Cache-Control: max-age=0` from a caller not allowed to invalidate, under the
    /// `FAIL_WITH_403` strategy.
    CacheInvalidationForbidden,
    /// The method requires an API key and the request has none, an unknown or disabled
    /// one, or one that is in no usage plan of this stage.
    InvalidApiKey,
    /// A usage-plan or stage throttle refused the request.
    Throttled,
    /// The key's usage-plan quota for the period is used up.
    QuotaExceeded,
    /// Throttle or quota state could not be read or written (`onCheckFailure: DENY`).
    UsageCheckFailed,
    /// A mock integration could not answer (no statusCode, no matching response).
    MockFailed,
    /// `passthroughBehavior` refuses the request's `Content-Type`.
    UnsupportedMediaType,
    /// A mapping template reads the body as JSON and it is not JSON.
    InvalidRequestBody,
    /// A non-proxy mapping failed: a template error, no matching integration response, or
    /// no method response for the status.
    MappingFailed,
    /// The authorizer's identity is missing or fails its validation expression, or the
    /// authorizer answered `Unauthorized`.
    Unauthorized,
    /// A Cognito or JWT authorizer's token is past its `exp` (and the clock skew).
    TokenExpired,
    /// An IAM method's SigV4 signature does not match the request.
    InvalidSignature,
    /// An IAM method's signature date is too far from now (or a presigned URL expired).
    SignatureExpired,
    /// An IAM method's signature names an access key (or session token) nobody has.
    InvalidToken,
    /// An IAM method's `Authorization` header lacks SigV4 parameters.
    IncompleteSignature,
    /// The authorizer's policy denies the method explicitly.
    ExplicitDeny,
    /// The authorizer's policy allows nothing that covers the method.
    ImplicitDeny,
    /// The authorizer answered something that is not a valid result, or failed.
    AuthorizerConfiguration,
    /// The authorizer could not be reached or did not answer in time.
    AuthorizerFailure,
    /// The method ARN an authorizer would see is longer than API Gateway allows.
    UriTooLong,
    /// A request validator found required parameters missing or blank.
    MissingParameters,
    /// A request validator found the body invalid against the method's model.
    InvalidBody,
    /// Mutual TLS is on and the request carries no client certificate the gateway can read
    /// (Envoy refuses untrusted ones in the handshake; this is the filter's own check).
    ClientCertificate,
}

/// API Gateway's gateway response types, used to pick customisations and for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    MissingAuthenticationToken,
    InvalidSignature,
    RequestTooLarge,
    IntegrationTimeout,
    IntegrationFailure,
    ApiConfigurationError,
    AccessDenied,
    InvalidApiKey,
    Throttled,
    QuotaExceeded,
    UnsupportedMediaType,
    BadRequestBody,
    BadRequestParameters,
    Unauthorized,
    AuthorizerConfigurationError,
    AuthorizerFailure,
    /// Not an API Gateway response type (414 cannot be customised); named for logs.
    UriTooLong,
}

impl ResponseType {
    /// The name used in `x-amazon-apigateway-gateway-responses`.
    pub fn name(self) -> &'static str {
        match self {
            ResponseType::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            ResponseType::InvalidSignature => "INVALID_SIGNATURE",
            ResponseType::RequestTooLarge => "REQUEST_TOO_LARGE",
            ResponseType::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            ResponseType::IntegrationFailure => "INTEGRATION_FAILURE",
            ResponseType::ApiConfigurationError => "API_CONFIGURATION_ERROR",
            ResponseType::AccessDenied => "ACCESS_DENIED",
            ResponseType::InvalidApiKey => "INVALID_API_KEY",
            ResponseType::Throttled => "THROTTLED",
            ResponseType::QuotaExceeded => "QUOTA_EXCEEDED",
            ResponseType::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ResponseType::BadRequestBody => "BAD_REQUEST_BODY",
            ResponseType::BadRequestParameters => "BAD_REQUEST_PARAMETERS",
            ResponseType::Unauthorized => "UNAUTHORIZED",
            ResponseType::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            ResponseType::AuthorizerFailure => "AUTHORIZER_FAILURE",
            ResponseType::UriTooLong => "URI_TOO_LONG",
        }
    }
}

impl GatewayError {
    /// HTTP status the client receives.
    pub fn status(self) -> u16 {
        match self {
            GatewayError::MissingAuthenticationToken
            | GatewayError::CacheInvalidationForbidden
            | GatewayError::InvalidApiKey
            | GatewayError::ExplicitDeny
            | GatewayError::ImplicitDeny
            | GatewayError::InvalidSignature
            | GatewayError::SignatureExpired
            | GatewayError::InvalidToken
            | GatewayError::IncompleteSignature
            | GatewayError::ClientCertificate => 403,
            GatewayError::Unauthorized | GatewayError::TokenExpired => 401,
            GatewayError::UriTooLong => 414,
            GatewayError::Throttled | GatewayError::QuotaExceeded => 429,
            GatewayError::RequestTooLarge => 413,
            GatewayError::UnsupportedMediaType => 415,
            GatewayError::InvalidRequestBody
            | GatewayError::MissingParameters
            | GatewayError::InvalidBody => 400,
            GatewayError::IntegrationTimeout => 504,
            GatewayError::IntegrationUnreachable
            | GatewayError::FunctionError
            | GatewayError::MalformedProxyResponse => 502,
            GatewayError::InvokeRejected
            | GatewayError::BackendFailed
            | GatewayError::BinaryDecodeFailed
            | GatewayError::IntegrationNotSupported
            | GatewayError::UsageCheckFailed
            | GatewayError::MockFailed
            | GatewayError::MappingFailed
            | GatewayError::AuthorizerConfiguration
            | GatewayError::AuthorizerFailure => 500,
        }
    }

    /// The body's key: `Message` for authorizer denials (as API Gateway sends them),
    /// `message` otherwise.
    pub fn message_key(self) -> &'static str {
        match self {
            GatewayError::ExplicitDeny | GatewayError::ImplicitDeny => "Message",
            _ => "message",
        }
    }

    /// The `message` of the JSON body.
    pub fn message(self) -> &'static str {
        match self {
            GatewayError::MissingAuthenticationToken => "Missing Authentication Token",
            GatewayError::RequestTooLarge => "Request Too Long",
            GatewayError::IntegrationTimeout => "Endpoint request timed out",
            GatewayError::CacheInvalidationForbidden => "Unauthorized",
            GatewayError::InvalidApiKey | GatewayError::ClientCertificate => "Forbidden",
            GatewayError::Throttled => "Too Many Requests",
            GatewayError::QuotaExceeded => "Limit Exceeded",
            GatewayError::UnsupportedMediaType => "Unsupported Media Type",
            GatewayError::InvalidRequestBody => "Could not parse request body into json",
            GatewayError::MissingParameters => "Missing required request parameters",
            GatewayError::InvalidBody => "Invalid request body",
            GatewayError::Unauthorized => "Unauthorized",
            GatewayError::TokenExpired => "The incoming token has expired",
            GatewayError::InvalidSignature => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            GatewayError::SignatureExpired => "Signature expired",
            GatewayError::InvalidToken => "The security token included in the request is invalid.",
            GatewayError::IncompleteSignature => "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
            GatewayError::ExplicitDeny => {
                "User is not authorized to access this resource with an explicit deny"
            }
            GatewayError::ImplicitDeny => "User is not authorized to access this resource",
            GatewayError::UriTooLong => "Request-URI Too Long",
            _ => "Internal server error",
        }
    }

    /// The `x-amzn-ErrorType` header value.
    pub fn error_type(self) -> &'static str {
        match self {
            GatewayError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            GatewayError::RequestTooLarge => "RequestTooLargeException",
            GatewayError::CacheInvalidationForbidden
            | GatewayError::ExplicitDeny
            | GatewayError::ImplicitDeny => "AccessDeniedException",
            GatewayError::Unauthorized | GatewayError::TokenExpired => "UnauthorizedException",
            GatewayError::InvalidSignature | GatewayError::SignatureExpired => {
                "InvalidSignatureException"
            }
            GatewayError::InvalidToken => "UnrecognizedClientException",
            GatewayError::IncompleteSignature => "IncompleteSignatureException",
            GatewayError::AuthorizerConfiguration => "AuthorizerConfigurationException",
            GatewayError::AuthorizerFailure => "AuthorizerFailureException",
            GatewayError::InvalidApiKey | GatewayError::ClientCertificate => "ForbiddenException",
            GatewayError::Throttled => "TooManyRequestsException",
            GatewayError::QuotaExceeded => "LimitExceededException",
            GatewayError::UnsupportedMediaType
            | GatewayError::InvalidRequestBody
            | GatewayError::MissingParameters
            | GatewayError::InvalidBody => "BadRequestException",
            _ => "InternalServerErrorException",
        }
    }

    /// The gateway response type this error is answered with.
    pub fn response_type(self) -> ResponseType {
        match self {
            GatewayError::MissingAuthenticationToken => ResponseType::MissingAuthenticationToken,
            GatewayError::RequestTooLarge => ResponseType::RequestTooLarge,
            GatewayError::IntegrationTimeout => ResponseType::IntegrationTimeout,
            GatewayError::IntegrationUnreachable
            | GatewayError::InvokeRejected
            | GatewayError::FunctionError
            | GatewayError::MalformedProxyResponse => ResponseType::IntegrationFailure,
            GatewayError::BinaryDecodeFailed
            | GatewayError::BackendFailed
            | GatewayError::IntegrationNotSupported
            | GatewayError::UsageCheckFailed
            | GatewayError::MockFailed
            | GatewayError::MappingFailed => ResponseType::ApiConfigurationError,
            GatewayError::UnsupportedMediaType => ResponseType::UnsupportedMediaType,
            GatewayError::InvalidRequestBody | GatewayError::InvalidBody => {
                ResponseType::BadRequestBody
            }
            GatewayError::MissingParameters => ResponseType::BadRequestParameters,
            GatewayError::InvalidApiKey => ResponseType::InvalidApiKey,
            GatewayError::Throttled => ResponseType::Throttled,
            GatewayError::QuotaExceeded => ResponseType::QuotaExceeded,
            GatewayError::CacheInvalidationForbidden
            | GatewayError::ExplicitDeny
            | GatewayError::ImplicitDeny
            | GatewayError::ClientCertificate => ResponseType::AccessDenied,
            GatewayError::Unauthorized | GatewayError::TokenExpired => ResponseType::Unauthorized,
            GatewayError::InvalidSignature
            | GatewayError::SignatureExpired
            | GatewayError::InvalidToken
            | GatewayError::IncompleteSignature => ResponseType::InvalidSignature,
            GatewayError::AuthorizerConfiguration => ResponseType::AuthorizerConfigurationError,
            GatewayError::AuthorizerFailure => ResponseType::AuthorizerFailure,
            GatewayError::UriTooLong => ResponseType::UriTooLong,
        }
    }

    /// The default gateway response: `{"message":"..."}` as API Gateway's default template
    /// `{"message":$context.error.messageString}` renders it.
    pub fn to_reply(self) -> Reply {
        self.to_reply_with(self.message())
    }

    /// [`GatewayError::to_reply`] with another message (IAM-style denials name the caller
    /// and the resource).
    pub fn to_reply_with(self, message: &str) -> Reply {
        let message = match self {
            // An authorizer that fails or answers nonsense gets `{"message": null}`.
            GatewayError::AuthorizerConfiguration | GatewayError::AuthorizerFailure => {
                serde_json::Value::Null
            }
            _ => serde_json::Value::String(message.to_string()),
        };
        let body = format!("{{\"{}\":{message}}}", self.message_key());
        let mut reply = Reply::json(self.status(), body);
        reply
            .headers
            .push(("x-amzn-ErrorType".into(), self.error_type().into()));
        reply
    }
}

/// One configuration problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `deployment.<field path>` or `openapi.<JSON path>`.
    pub location: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location: location.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_table() {
        for (err, status, body, etype) in [
            (
                GatewayError::MissingAuthenticationToken,
                403,
                r#"{"message":"Missing Authentication Token"}"#,
                "MissingAuthenticationTokenException",
            ),
            (
                GatewayError::IntegrationTimeout,
                504,
                r#"{"message":"Endpoint request timed out"}"#,
                "InternalServerErrorException",
            ),
            (
                GatewayError::FunctionError,
                502,
                r#"{"message":"Internal server error"}"#,
                "InternalServerErrorException",
            ),
            (
                GatewayError::MalformedProxyResponse,
                502,
                r#"{"message":"Internal server error"}"#,
                "InternalServerErrorException",
            ),
            (
                GatewayError::InvalidApiKey,
                403,
                r#"{"message":"Forbidden"}"#,
                "ForbiddenException",
            ),
            (
                GatewayError::Throttled,
                429,
                r#"{"message":"Too Many Requests"}"#,
                "TooManyRequestsException",
            ),
            (
                GatewayError::QuotaExceeded,
                429,
                r#"{"message":"Limit Exceeded"}"#,
                "LimitExceededException",
            ),
            (
                GatewayError::UnsupportedMediaType,
                415,
                r#"{"message":"Unsupported Media Type"}"#,
                "BadRequestException",
            ),
            (
                GatewayError::MappingFailed,
                500,
                r#"{"message":"Internal server error"}"#,
                "InternalServerErrorException",
            ),
            (
                GatewayError::CacheInvalidationForbidden,
                403,
                r#"{"message":"Unauthorized"}"#,
                "AccessDeniedException",
            ),
            (
                GatewayError::InvokeRejected,
                500,
                r#"{"message":"Internal server error"}"#,
                "InternalServerErrorException",
            ),
        ] {
            let r = err.to_reply();
            assert_eq!(r.status, status, "{err:?}");
            assert_eq!(r.body_text(), body, "{err:?}");
            assert_eq!(r.header("x-amzn-errortype"), Some(etype), "{err:?}");
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
}
