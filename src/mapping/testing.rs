//! A request and integration result to map, for unit tests.

use std::rc::Rc;

use super::{override_maps, Sources};
use crate::http::Header;
use crate::vtl::{self, Value};

fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub struct Fixture {
    pub path: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub integration_headers: Vec<Header>,
    pub integration_body: String,
    pub stage_variables: Value,
    pub context: Value,
}

impl Fixture {
    /// A request with `body`, stage `prod` and stage variable `env=test`.
    pub fn new(body: &str) -> Fixture {
        let mut ctx = vec![
            (Rc::from("stage"), Value::str("prod")),
            (Rc::from("requestId"), Value::str("req-1")),
        ];
        ctx.extend(override_maps());
        Fixture {
            path: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: body.to_string(),
            integration_headers: Vec::new(),
            integration_body: String::new(),
            stage_variables: Value::string_map(&owned(&[("env", "test")]), false),
            context: Value::map(ctx),
        }
    }

    pub fn query(mut self, q: &[(&str, &str)]) -> Fixture {
        self.query = owned(q);
        self
    }

    pub fn headers(mut self, h: &[(&str, &str)]) -> Fixture {
        self.headers = owned(h);
        self
    }

    pub fn path(mut self, p: &[(&str, &str)]) -> Fixture {
        self.path = owned(p);
        self
    }

    /// The integration's answer, which response templates read as `$input`.
    pub fn result(mut self, body: &str, headers: &[(&str, &str)]) -> Fixture {
        self.integration_body = body.to_string();
        self.integration_headers = owned(headers);
        self
    }

    /// The request-side environment.
    pub fn env(&self) -> vtl::Env<'_> {
        vtl::Env {
            input: vtl::Input {
                body: &self.body,
                path: &self.path,
                querystring: &self.query,
                header: &self.headers,
            },
            context: self.context.clone(),
            stage_variables: self.stage_variables.clone(),
        }
    }

    /// The response-side environment: `$input` is the integration's answer.
    pub fn response_env(&self) -> vtl::Env<'_> {
        vtl::Env {
            input: vtl::Input {
                body: &self.integration_body,
                ..self.env().input
            },
            ..self.env()
        }
    }

    pub fn sources(&self) -> Sources<'_> {
        Sources {
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
            stage_variables: &self.stage_variables,
            context: &self.context,
            integration_headers: &self.integration_headers,
            integration_body: &self.integration_body,
        }
    }
}
