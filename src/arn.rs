//! Amazon Resource Names, split without trusting them.
//!
//! Owns: `arn:{partition}:{service}:{region}:{account}:{resource}` into its parts (the
//! resource keeps any further colons). Must not: decide what a service's resource means.

/// The parts of an ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Splits `s`; `None` when it is not an ARN.
pub fn parse(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_table() {
        let a = parse("arn:aws:iam::123456789012:user/alice").unwrap();
        assert_eq!(
            (a.service, a.region, a.account, a.resource),
            ("iam", "", "123456789012", "user/alice")
        );
        let a = parse("arn:aws:execute-api:us-east-1:1:abc/dev/GET/a:b").unwrap();
        assert_eq!(a.resource, "abc/dev/GET/a:b");
        for bad in ["", "arn:aws:iam", "urn:aws:iam::1:x", "arn:aws:iam::1"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
