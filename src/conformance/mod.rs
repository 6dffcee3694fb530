//! The store conformance kit (feature `conformance`): the tests every portcullis store passes,
//! for a third-party store to run with one macro call.
//!
//! A store author writes a fixture — an `async fn` returning fresh, empty [`Stores`] (or any
//! [`Fixture`], to clean up after each test) — and calls [`store_conformance!`](crate::store_conformance) in a test file:
//!
//! ```
//! use portcullis::store::{MemoryStore, Stores};
//!
//! async fn fresh_store() -> Stores {
//!     Stores::new(MemoryStore::new())
//! }
//!
//! // Every suite: users, tokens, secrets, counters, events.
//! portcullis::store_conformance!(fresh_store);
//!
//! mod only_tokens_and_secrets {
//!     use super::fresh_store;
//!     // Only the traits this store implements; the other fields of `Stores` may be anything.
//!     portcullis::store_conformance!(fresh_store; tokens, secrets);
//! }
//! # fn main() {}
//! ```
//!
//! Each test becomes a `#[test]` (`users::first_user_roles_are_granted_once`,
//! `tokens::refresh::fifty_concurrent_rotations_of_one_token_succeed_exactly_once`, …) that
//! runs on its own multi-threaded tokio runtime, so the concurrency tests race for real: fifty
//! rotations of one token, fifty consumers of one secret, fifty wrong guesses against a code,
//! concurrent registrations of the first user. Run them against the real database the store
//! targets, not a stand-in. The functions in [`users`], [`tokens`], [`secrets`], [`counters`]
//! and [`events`] are the tests themselves; their names say what a store must do.

pub mod counters;
pub mod events;
pub mod secrets;
mod support;
pub mod tokens;
pub mod users;

use std::future::Future;

use crate::store::Stores;

/// What a conformance test runs against: fresh stores, and what to release afterwards.
///
/// [`Stores`] is a fixture itself. Implement this trait to keep a temporary directory alive
/// for the test, to delete what the test wrote to a shared server, or to skip a test on a
/// machine without the store's server (`Option<F>`: `None` skips).
pub trait Fixture: Send + Sized + 'static {
    /// The stores under test; called once, before the test.
    fn stores(&self) -> Stores;

    /// Whether the test can run (default: yes). A test whose fixture is unavailable passes
    /// without running and says so on standard error.
    fn available(&self) -> bool {
        true
    }

    /// Cleans up after a test that passed (default: nothing).
    fn finish(self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

impl Fixture for Stores {
    fn stores(&self) -> Stores {
        self.clone()
    }
}

impl<F: Fixture> Fixture for Option<F> {
    fn stores(&self) -> Stores {
        self.as_ref()
            .expect("an unavailable fixture has no stores")
            .stores()
    }

    fn available(&self) -> bool {
        self.as_ref().is_some_and(Fixture::available)
    }

    async fn finish(self) {
        if let Some(fixture) = self {
            fixture.finish().await;
        }
    }
}

/// Runs one conformance test: builds a multi-threaded runtime, makes the fixture, runs `test`
/// on its stores and finishes the fixture. Called by [`store_conformance!`](crate::store_conformance).
///
/// # Panics
///
/// When the test fails (that is how it reports), or when no runtime can be built.
pub fn run<F, Made, T, Ran>(fixture: impl FnOnce() -> Made, test: T)
where
    F: Fixture,
    Made: Future<Output = F>,
    T: FnOnce(Stores) -> Ran,
    Ran: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance test");
    runtime.block_on(async {
        let fixture = fixture().await;
        if !fixture.available() {
            eprintln!("skipped: the store under test is not available here");
            return;
        }
        test(fixture.stores()).await;
        fixture.finish().await;
    });
}

/// Generates the store conformance tests (see the [module documentation](crate::conformance)).
///
/// `store_conformance!(fixture)` runs every suite; `store_conformance!(fixture; tokens,
/// secrets)` only those named (`users`, `tokens`, `secrets`, `counters`, `events`). `fixture`
/// names an `async fn() -> impl Fixture` in scope where the macro is called.
#[macro_export]
macro_rules! store_conformance {
    ($fixture:ident) => {
        $crate::store_conformance!($fixture; users, tokens, secrets, counters, events);
    };
    ($fixture:ident; $($suite:ident),+ $(,)?) => {
        $( $crate::store_conformance!(@suite $fixture, $suite); )+
    };
    (@suite $fixture:ident, users) => {
        $crate::store_conformance!(@tests $fixture, users;
            users_are_found_by_id_username_and_email_ignoring_ascii_case,
            duplicate_usernames_and_emails_conflict_ignoring_case,
            first_user_roles_are_granted_once,
            users_are_counted_deactivated_ones_included,
            concurrent_registrations_make_exactly_one_first_user,
            updates_change_only_the_given_fields,
            nul_bytes_are_refused_by_every_store,
            lookups_by_text_no_store_can_keep_find_nothing,
            unicode_sql_metacharacters_and_large_values_round_trip,
            profile_and_verification_fields_round_trip,
            a_new_address_is_unverified_unless_the_update_verifies_it,
            phones_are_unique_and_addresses_are_checked,
            identities_link_to_one_user_and_find_it,
            concurrent_links_of_one_identity_have_exactly_one_owner,
        );
    };
    (@suite $fixture:ident, tokens) => {
        mod tokens {
            use super::*;
            $crate::store_conformance!(@tests $fixture, tokens, once;
                tokens_are_found_by_kind_and_digest,
                tokens_come_with_their_owner,
                duplicate_digests_conflict_within_a_kind,
                tokens_of_unknown_users_are_refused,
            );
            $crate::store_conformance!(@per_kind $fixture, refresh, Refresh);
            $crate::store_conformance!(@per_kind $fixture, session, Session);
        }
    };
    (@suite $fixture:ident, secrets) => {
        $crate::store_conformance!(@tests $fixture, secrets;
            a_secret_is_spent_once_by_its_kind_and_digest,
            a_secret_expires_for_consumers_and_guessers_alike,
            fifty_concurrent_consumers_of_one_secret_have_exactly_one_winner,
            wrong_guesses_spend_attempts_until_even_the_right_code_is_refused,
            fifty_concurrent_wrong_guesses_are_evaluated_at_most_attempts_times,
            a_right_guess_racing_wrong_ones_wins_at_most_once,
            a_new_secret_can_replace_the_subjects_earlier_ones,
            concurrent_replacing_inserts_leave_one_live_secret,
            guesses_and_revocations_are_scoped_to_their_subject_and_kind,
            a_secret_without_a_subject_is_redeemed_by_digest_alone,
            duplicate_digests_conflict_within_a_kind,
            purge_deletes_what_expired_or_ended_before_the_cutoff,
            text_no_store_can_keep_is_refused_and_finds_nothing,
            payloads_and_timestamps_round_trip,
        );
    };
    (@suite $fixture:ident, counters) => {
        $crate::store_conformance!(@tests $fixture, counters;
            counters_consume_within_a_limit_per_window,
            concurrent_consumption_never_passes_the_limit,
        );
    };
    (@suite $fixture:ident, events) => {
        $crate::store_conformance!(@tests $fixture, events;
            audit_events_are_kept_newest_first_and_filtered_by_user,
        );
    };
    (@per_kind $fixture:ident, $module:ident, $kind:ident) => {
        mod $module {
            use super::*;
            $crate::store_conformance!(@kind_tests $fixture, $kind;
                tokens_of_user_are_listed_oldest_first_by_kind,
                active_token_limit_counts_only_active_tokens,
                concurrent_inserts_never_exceed_the_active_limit,
                rotation_replaces_an_active_token_once,
                fifty_concurrent_rotations_of_one_token_succeed_exactly_once,
                a_rotation_racing_a_family_revoke_never_leaves_the_family_active,
                a_rotation_racing_a_user_revoke_never_leaves_a_token_active,
                revocation_selectors_revoke_only_what_they_select,
                families_live_while_a_token_is_active,
                purge_deletes_what_expired_or_was_revoked_before_the_cutoff,
                last_use_only_moves_forward,
                timestamps_round_trip_at_microsecond_precision,
                sign_in_factors_round_trip_and_survive_rotation,
            );
        }
    };
    (@kind_tests $fixture:ident, $kind:ident; $($test:ident),+ $(,)?) => {$(
        #[test]
        fn $test() {
            $crate::conformance::run($fixture, |stores| {
                $crate::conformance::tokens::$test(stores, $crate::store::TokenKind::$kind)
            });
        }
    )+};
    (@tests $fixture:ident, $suite:ident, once; $($test:ident),+ $(,)?) => {$(
        #[test]
        fn $test() {
            $crate::conformance::run($fixture, $crate::conformance::$suite::$test);
        }
    )+};
    (@tests $fixture:ident, $suite:ident; $($test:ident),+ $(,)?) => {
        mod $suite {
            use super::*;
            $crate::store_conformance!(@tests $fixture, $suite, once; $($test),+);
        }
    };
}
