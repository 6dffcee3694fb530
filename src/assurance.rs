//! How a person proved who they are: the [`Factor`]s of a sign-in and the [`Assurance`]
//! level they reach.
//!
//! A sign-in records its factors on the session or refresh family it starts; every request
//! the session authenticates carries them in its [`Identity`](crate::Identity), and access
//! tokens carry them as the `amr` claim (RFC 8176). A guard can then ask for a level before a
//! sensitive action ([`guard::assurance`](crate::guard::assurance)).

use std::fmt;

/// One way of proving who one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Factor {
    /// A password (a memorized secret).
    Password,
    /// A single-use link or code sent to the user's email address.
    Email,
    /// A sign-in at an external identity provider (OpenID Connect).
    Federated,
    /// A one-time password from an authenticator app (TOTP).
    Otp,
    /// A single-use recovery code (a look-up secret).
    RecoveryCode,
    /// A passkey: a WebAuthn credential with user verification, by itself multi-factor.
    Passkey,
}

impl Factor {
    const ALL: [Factor; 6] = [
        Factor::Password,
        Factor::Email,
        Factor::Federated,
        Factor::Otp,
        Factor::RecoveryCode,
        Factor::Passkey,
    ];

    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The name in an `amr` claim: RFC 8176 §2's `pwd`, `otp` and `pop` where one fits, and
    /// collision-resistant names with a `portcullis:` prefix for the rest, as RFC 8176 §2
    /// asks of unregistered values.
    pub const fn amr(self) -> &'static str {
        match self {
            Factor::Password => "pwd",
            Factor::Email => "portcullis:email",
            Factor::Federated => "portcullis:federated",
            Factor::Otp => "otp",
            Factor::RecoveryCode => "portcullis:recovery-code",
            Factor::Passkey => "pop",
        }
    }

    /// The factor an `amr` value names, if any.
    pub fn from_amr(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|factor| factor.amr() == name)
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.amr())
    }
}

/// A set of [`Factor`]s. Empty for credentials that record none (API keys, and sessions
/// started before factors were recorded).
///
/// ```
/// use portcullis::assurance::{Assurance, Factor, Factors};
///
/// let password = Factors::from(Factor::Password);
/// assert_eq!(password.assurance(), Assurance::Aal1);
/// let two = password.with(Factor::Otp);
/// assert_eq!(two.assurance(), Assurance::Aal2);
/// assert_eq!(two.amr(), ["pwd", "otp", "mfa"]);
/// assert_eq!(Factors::from_amr(["otp", "pwd", "mfa", "unknown"]), two);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Factors(u16);

impl Factors {
    /// No factor.
    pub const NONE: Factors = Factors(0);

    /// This set and `factor`.
    #[must_use]
    pub const fn with(self, factor: Factor) -> Self {
        Self(self.0 | factor.bit())
    }

    /// Whether `factor` is in the set.
    pub const fn contains(self, factor: Factor) -> bool {
        self.0 & factor.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The factors, in [`Factor`] order.
    pub fn iter(self) -> impl Iterator<Item = Factor> {
        Factor::ALL
            .into_iter()
            .filter(move |factor| self.contains(*factor))
    }

    /// The bits a store keeps (see [`from_bits`](Self::from_bits)).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The set a store kept as [`bits`](Self::bits). Bits no factor of this build has are
    /// dropped: a set written by a newer build reads as a weaker one, never a stronger one.
    pub fn from_bits(bits: u16) -> Self {
        Self(bits & Factor::ALL.iter().fold(0, |all, factor| all | factor.bit()))
    }

    /// The `amr` claim's values (RFC 8176): each factor's name, then `mfa` when the set
    /// reaches [`Assurance::Aal2`] with more than one factor.
    pub fn amr(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.iter().map(Factor::amr).collect();
        if names.len() > 1 && self.assurance() == Assurance::Aal2 {
            names.push("mfa");
        }
        names
    }

    /// The set an `amr` claim names; unknown values (and `mfa`, which [`assurance`]
    /// recomputes) are ignored.
    ///
    /// [`assurance`]: Self::assurance
    pub fn from_amr<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        names
            .into_iter()
            .filter_map(|name| Factor::from_amr(name.as_ref()))
            .fold(Self::NONE, Self::with)
    }

    /// The authenticator assurance level the factors reach together (NIST SP 800-63B §4):
    /// [`Aal2`](Assurance::Aal2) for a passkey, or a password with a one-time password or a
    /// recovery code; [`Aal1`](Assurance::Aal1) otherwise. An email link or code is not an
    /// authenticator NIST accepts for AAL2 (SP 800-63B §5.1.3.1), and a federated sign-in
    /// says nothing about the provider's own factors.
    pub const fn assurance(self) -> Assurance {
        let possession = self.contains(Factor::Otp) || self.contains(Factor::RecoveryCode);
        if self.contains(Factor::Passkey) || (self.contains(Factor::Password) && possession) {
            Assurance::Aal2
        } else {
            Assurance::Aal1
        }
    }
}

impl From<Factor> for Factors {
    fn from(factor: Factor) -> Self {
        Self::NONE.with(factor)
    }
}

impl FromIterator<Factor> for Factors {
    fn from_iter<I: IntoIterator<Item = Factor>>(factors: I) -> Self {
        factors.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for Factors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// An authenticator assurance level (NIST SP 800-63B §4), ordered: `Aal1 < Aal2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Assurance {
    /// Single-factor: a password, an email link, a federated sign-in.
    Aal1,
    /// Two factors, or a passkey.
    Aal2,
}

impl Assurance {
    /// The name in an `acr_values` challenge parameter (RFC 9470 §3): `aal1` or `aal2`.
    pub const fn acr(self) -> &'static str {
        match self {
            Assurance::Aal1 => "aal1",
            Assurance::Aal2 => "aal2",
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nist_800_63b_4_2_aal2_needs_two_factors_or_a_passkey() {
        let aal = |factors: &[Factor]| factors.iter().copied().collect::<Factors>().assurance();
        assert_eq!(aal(&[]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Password]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Otp]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Email, Factor::Otp]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Federated, Factor::Otp]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Password, Factor::Email]), Assurance::Aal1);
        assert_eq!(aal(&[Factor::Password, Factor::Otp]), Assurance::Aal2);
        assert_eq!(
            aal(&[Factor::Password, Factor::RecoveryCode]),
            Assurance::Aal2
        );
        assert_eq!(aal(&[Factor::Passkey]), Assurance::Aal2);
    }

    #[test]
    fn rfc8176_mfa_is_named_only_for_two_factors() {
        assert_eq!(Factors::from(Factor::Passkey).amr(), ["pop"]);
        assert_eq!(
            Factors::from(Factor::Password).with(Factor::Email).amr(),
            ["pwd", "portcullis:email"]
        );
    }

    #[test]
    fn unknown_bits_are_dropped() {
        assert_eq!(
            Factors::from_bits(u16::MAX).iter().count(),
            Factor::ALL.len()
        );
        assert_eq!(Factors::from_bits(1 << 15), Factors::NONE);
    }

    proptest! {
        #[test]
        fn bits_and_amr_round_trip(bits in any::<u16>()) {
            let factors = Factors::from_bits(bits);
            prop_assert_eq!(Factors::from_bits(factors.bits()), factors);
            prop_assert_eq!(Factors::from_amr(factors.amr()), factors);
        }
    }
}
