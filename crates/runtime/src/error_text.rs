//! Errors in words a person can act on.

/// `e`'s message followed by each of its causes', after a colon: clients such as reqwest,
/// oauth2's and tokio-postgres keep the cause (a refused connection, a certificate problem)
/// out of their own message.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
