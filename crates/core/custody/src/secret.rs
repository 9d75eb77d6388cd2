//! A secret in memory: zeroized on drop, redacted in `Debug`, reached through one method.

use zeroize::Zeroize;

/// Holds a secret value. The value is wiped when the wrapper is dropped, never appears in
/// `Debug` output, and is read only through [`Secret::expose`], so every use is greppable.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Takes ownership of `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself. Keep the borrow short; never log or copy it out.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let secret = Secret::new(vec![0x41u8; 8]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "Secret(<redacted>)");
        assert!(!shown.contains("65"));
        assert_eq!(secret.expose(), &vec![0x41u8; 8]);
    }
}
