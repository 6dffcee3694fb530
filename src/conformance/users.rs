//! The [`UserStore`] requirements.

use std::sync::Arc;

use super::support::*;
use crate::store::*;

/// Nul bytes are refused by every store.
pub async fn nul_bytes_are_refused_by_every_store(stores: Stores) {
    let Stores { users, tokens, .. } = stores;
    let refused = users.create_user(NewUser::new("a\0b"), at(0)).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidInput("username"))),
        "{refused:?}"
    );
    let ada = user(&*users, "ada").await;
    let mut named = token(TokenKind::ApiKey, ada.id, 1);
    named.name = Some("x\0".into());
    assert!(matches!(
        tokens.insert_token(named).await,
        Err(StoreError::InvalidInput("name"))
    ));
    let update = UserUpdate::default().full_name(Some("\0".into()));
    assert!(matches!(
        users.update_user(ada.id, update, at(1)).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(
        users.user_by_id(ada.id).await.unwrap().unwrap().full_name,
        None,
        "nothing written"
    );
}

/// Hardening item 8: such text comes from clients (a login form, say); PostgreSQL refused
/// the query, which surfaced as a 503.
pub async fn lookups_by_text_no_store_can_keep_find_nothing(stores: Stores) {
    let Stores {
        users, counters, ..
    } = stores;
    user(&*users, "ada").await;
    assert_eq!(users.user_by_username("ada\0").await.unwrap(), None);
    assert_eq!(users.user_by_username("\0").await.unwrap(), None);
    assert_eq!(
        users.user_by_email("ada@example.com\0").await.unwrap(),
        None
    );
    assert_eq!(counters.counter("quota\0", at(0)).await.unwrap(), 0);
}

/// Users are found by id username and email ignoring ASCII case.
pub async fn users_are_found_by_id_username_and_email_ignoring_ascii_case(stores: Stores) {
    let Stores { users, .. } = stores;
    let created = users
        .create_user(
            NewUser::new("Ada")
                .email("Ada@Example.com")
                .full_name("Ada Lovelace")
                .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
                .roles(["member"]),
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(created.username, "Ada");
    assert_eq!(created.roles, ["member"]);
    assert!(created.is_active);
    assert_eq!(created.created_at, at(0));
    assert_eq!(created.last_login, None);
    assert_eq!(
        users.user_by_id(created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        users.user_by_username("ADA").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        users.user_by_email("ada@example.COM").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(users.user_by_username("bob").await.unwrap(), None);
    assert_eq!(
        users.user_by_id(UserId(created.id.0 + 1000)).await.unwrap(),
        None
    );
}

/// Duplicate usernames and emails conflict ignoring case.
pub async fn duplicate_usernames_and_emails_conflict_ignoring_case(stores: Stores) {
    let Stores { users, .. } = stores;
    user(&*users, "ada").await;
    let taken_name = users.create_user(NewUser::new("ADA"), at(1)).await;
    assert!(
        matches!(taken_name, Err(StoreError::Conflict("username"))),
        "{taken_name:?}"
    );
    let taken_email = users
        .create_user(NewUser::new("bob").email("ADA@example.com"), at(1))
        .await;
    assert!(
        matches!(taken_email, Err(StoreError::Conflict("email"))),
        "{taken_email:?}"
    );
    // Users without email never conflict on email.
    users
        .create_user(NewUser::new("carol"), at(1))
        .await
        .unwrap();
    users
        .create_user(NewUser::new("dave"), at(1))
        .await
        .unwrap();
}

/// First user roles are granted once.
pub async fn first_user_roles_are_granted_once(stores: Stores) {
    let Stores { users, .. } = stores;
    let new = |name: &str| {
        NewUser::new(name)
            .roles(["member"])
            .first_user_roles(["superuser", "member"])
    };
    let first = users.create_user(new("first"), at(0)).await.unwrap();
    let second = users.create_user(new("second"), at(0)).await.unwrap();
    assert_eq!(first.roles, ["member", "superuser"]);
    assert!(first.is_superuser());
    assert_eq!(second.roles, ["member"]);
}

/// Users are counted deactivated ones included.
pub async fn users_are_counted_deactivated_ones_included(stores: Stores) {
    let Stores { users, .. } = stores;
    assert_eq!(users.count_users().await.unwrap(), 0);
    let ada = user(&*users, "ada").await;
    user(&*users, "bob").await;
    assert_eq!(users.count_users().await.unwrap(), 2);
    let deactivate = UserUpdate {
        is_active: Some(false),
        ..UserUpdate::default()
    };
    users.update_user(ada.id, deactivate, at(1)).await.unwrap();
    assert_eq!(users.count_users().await.unwrap(), 2);
}

/// Concurrent registrations make exactly one first user.
pub async fn concurrent_registrations_make_exactly_one_first_user(stores: Stores) {
    let Stores { users, .. } = stores;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let users = Arc::clone(&users);
            tokio::spawn(async move {
                users
                    .create_user(
                        NewUser::new(format!("user{i}")).first_user_roles(["superuser"]),
                        at(0),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut superusers = 0;
    for task in tasks {
        superusers += usize::from(task.await.unwrap().is_superuser());
    }
    assert_eq!(superusers, 1);
}

/// Updates change only the given fields.
pub async fn updates_change_only_the_given_fields(stores: Stores) {
    let Stores { users, .. } = stores;
    let ada = user(&*users, "ada").await;
    user(&*users, "bob").await;
    let updated = users
        .update_user(
            ada.id,
            UserUpdate::default()
                .password_hash("h2")
                .roles(["admin"])
                .active(false)
                .last_login(at(5)),
            at(10),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.password_hash.as_deref(), Some("h2"));
    assert_eq!(updated.roles, ["admin"]);
    assert!(!updated.is_active);
    assert_eq!(updated.last_login, Some(at(5)));
    assert_eq!(updated.updated_at, at(10));
    assert_eq!(updated.email, ada.email, "untouched");
    assert_eq!(updated.created_at, ada.created_at, "untouched");

    let cleared = users
        .update_user(
            ada.id,
            UserUpdate::default()
                .email(None)
                .full_name(Some("A".into())),
            at(11),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(cleared.full_name.as_deref(), Some("A"));
    assert_eq!(cleared.password_hash.as_deref(), Some("h2"), "untouched");

    let conflict = users
        .update_user(
            ada.id,
            UserUpdate::default().email(Some("BOB@example.com".into())),
            at(12),
        )
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict("email"))),
        "{conflict:?}"
    );
    assert_eq!(
        users
            .update_user(UserId(999_999), UserUpdate::default(), at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(users.user_by_id(ada.id).await.unwrap().unwrap(), cleared);
}

/// Unicode SQL metacharacters and large values round trip.
pub async fn unicode_sql_metacharacters_and_large_values_round_trip(stores: Stores) {
    let Stores { users, tokens, .. } = stores;
    let hostile = [
        "Robert'); DROP TABLE portcullis_users;--",
        "\" OR \"1\"=\"1",
        "名前-ユーザー-🦀",
        "%_\\[]^$.*",
        "tab\tnewline\ncr\r",
        "ａｄｍｉｎ",
    ];
    for (n, text) in hostile.iter().enumerate() {
        let created = users
            .create_user(
                NewUser::new(*text)
                    .email(format!("{text}{n}@example.com"))
                    .full_name(*text)
                    .password_hash(*text)
                    .roles([*text]),
                at(0),
            )
            .await
            .unwrap();
        let found = users.user_by_username(text).await.unwrap().unwrap();
        assert_eq!(found, created);
        assert_eq!(found.username, *text);
        assert_eq!(found.roles, [*text]);
        let mut new = token(TokenKind::ApiKey, created.id, n as u32);
        new.name = Some((*text).to_owned());
        new.hint = (*text).to_owned();
        new.family = Some(FamilyId::new(*text));
        new.scopes = Some(vec![(*text).to_owned()]);
        let stored = tokens.insert_token(new).await.unwrap();
        let found = tokens
            .token_by_digest(TokenKind::ApiKey, &stored.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, stored);
        assert!(
            tokens
                .family_is_active(&FamilyId::new(*text), at(0))
                .await
                .unwrap()
        );
    }
    // A wildcard-looking name matches only itself.
    assert!(users.user_by_username("%").await.unwrap().is_none());
    // 1 MB values.
    let large = "x".repeat(1 << 20);
    let big = users
        .create_user(
            NewUser::new("big")
                .full_name(large.clone())
                .password_hash(large.clone()),
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(
        users
            .user_by_id(big.id)
            .await
            .unwrap()
            .unwrap()
            .full_name
            .unwrap()
            .len(),
        1 << 20
    );
    let mut new = token(TokenKind::ApiKey, big.id, 500);
    new.name = Some(large.clone());
    let stored = tokens.insert_token(new).await.unwrap();
    assert_eq!(stored.name.unwrap().len(), 1 << 20);
}

/// Verification flags, phone, picture and daily allowance are kept and found.
pub async fn profile_and_verification_fields_round_trip(stores: Stores) {
    let Stores { users, .. } = stores;
    let new = NewUser::new("ada")
        .email("Ada@Example.com")
        .email_verified(true)
        .phone("+14155550123")
        .phone_verified(true)
        .full_name("Ada Lovelace")
        .photo_url("https://lh3.googleusercontent.com/a/ada=s96-c")
        .daily_allowance(u32::MAX);
    let ada = users.create_user(new, at(0)).await.unwrap();
    assert!(ada.email_verified && ada.phone_verified);
    assert_eq!(ada.phone.as_deref(), Some("+14155550123"));
    assert_eq!(
        ada.photo_url.as_deref(),
        Some("https://lh3.googleusercontent.com/a/ada=s96-c")
    );
    assert_eq!(ada.daily_allowance, Some(u32::MAX));
    assert_eq!(ada.verified_email(), Some("Ada@Example.com"));
    for found in [
        users.user_by_id(ada.id).await.unwrap(),
        users.user_by_phone("+14155550123").await.unwrap(),
        users.user_by_verified_phone("+14155550123").await.unwrap(),
        users
            .user_by_verified_email("ada@EXAMPLE.com")
            .await
            .unwrap(),
    ] {
        assert_eq!(found.as_ref(), Some(&ada));
    }
    let bob = user(&*users, "bob").await;
    assert!(!bob.email_verified && bob.phone.is_none() && bob.daily_allowance.is_none());
    assert_eq!(
        users
            .user_by_verified_email("bob@example.com")
            .await
            .unwrap(),
        None,
        "an unverified address does not match"
    );
    let cleared = users
        .update_user(
            ada.id,
            UserUpdate::default()
                .photo_url(None)
                .daily_allowance(None)
                .phone(None),
            at(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cleared.photo_url, cleared.daily_allowance, cleared.phone),
        (None, None, None)
    );
    assert_eq!(users.user_by_phone("+14155550123").await.unwrap(), None);
}

/// A new email address or phone number is unverified unless the same update verifies it;
/// the same address in another case stays verified.
pub async fn a_new_address_is_unverified_unless_the_update_verifies_it(stores: Stores) {
    let Stores { users, .. } = stores;
    let new = NewUser::new("ada")
        .email("ada@example.com")
        .email_verified(true)
        .phone("+14155550123")
        .phone_verified(true);
    let ada = users.create_user(new, at(0)).await.unwrap();
    let update = |update: UserUpdate| {
        let users = Arc::clone(&users);
        async move {
            users
                .update_user(ada.id, update, at(1))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let same = update(UserUpdate::default().email(Some("ADA@example.com".into()))).await;
    assert!(same.email_verified, "the same address, another case");
    assert_eq!(same.email.as_deref(), Some("ADA@example.com"));
    let moved = update(UserUpdate::default().email(Some("ada@elsewhere.org".into()))).await;
    assert!(!moved.email_verified, "a new address must be proved again");
    assert!(moved.phone_verified, "the phone is another matter");
    let proved = update(
        UserUpdate::default()
            .email(Some("ada@third.org".into()))
            .email_verified(true),
    )
    .await;
    assert!(proved.email_verified);
    let renumbered = update(UserUpdate::default().phone(Some("+442071838750".into()))).await;
    assert!(!renumbered.phone_verified);
    let unchanged = update(UserUpdate::default().phone(Some("+442071838750".into()))).await;
    assert!(!unchanged.phone_verified, "still unproved");
    let verified = update(UserUpdate::default().phone_verified(true)).await;
    assert!(verified.phone_verified);
    let again = update(UserUpdate::default().phone(Some("+442071838750".into()))).await;
    assert!(again.phone_verified, "the same number stays verified");
    let cleared = update(UserUpdate::default().email(None)).await;
    assert!(!cleared.email_verified && cleared.email.is_none());
    assert_eq!(users.user_by_id(ada.id).await.unwrap().unwrap(), cleared);
}

/// Phone numbers are unique, E.164 and compared exactly; pictures are web URLs.
pub async fn phones_are_unique_and_addresses_are_checked(stores: Stores) {
    let Stores { users, .. } = stores;
    let ada = users
        .create_user(NewUser::new("ada").phone("+14155550123"), at(0))
        .await
        .unwrap();
    let taken = users
        .create_user(NewUser::new("bob").phone("+14155550123"), at(0))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("phone"))),
        "{taken:?}"
    );
    let bob = user(&*users, "bob").await;
    let taken = users
        .update_user(
            bob.id,
            UserUpdate::default().phone(Some("+14155550123".into())),
            at(1),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("phone"))),
        "{taken:?}"
    );
    assert_eq!(
        users
            .user_by_phone("+14155550123")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ada.id)
    );
    assert_eq!(users.user_by_phone("14155550123").await.unwrap(), None);
    assert_eq!(
        users.user_by_verified_phone("+14155550123").await.unwrap(),
        None,
        "not verified"
    );
    for phone in [
        "4155550123",
        "+1 415 555 0123",
        "+0123",
        "+1234567890123456",
        "+1\0",
    ] {
        let refused = users
            .create_user(NewUser::new("carol").phone(phone), at(0))
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput("phone"))),
            "{phone:?}: {refused:?}"
        );
    }
    for url in [
        "javascript:alert(1)",
        "data:image/png;base64,AA",
        "//cdn/x.png",
    ] {
        let refused = users
            .update_user(
                bob.id,
                UserUpdate::default().photo_url(Some(url.into())),
                at(1),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput("photo_url"))),
            "{url}: {refused:?}"
        );
    }
    assert_eq!(users.user_by_phone("+1\0").await.unwrap(), None);
}

/// An external identity is linked to one user, found by issuer and subject compared
/// exactly, listed oldest first and unlinked by its owner only.
pub async fn identities_link_to_one_user_and_find_it(stores: Stores) {
    let Stores { users, .. } = stores;
    let ada = user(&*users, "ada").await;
    let bob = user(&*users, "bob").await;
    const GOOGLE: &str = "https://accounts.google.com";
    let google = ExternalIdentity::new(GOOGLE, "1078 'ada'; --", at(5));
    assert!(users.link_identity(ada.id, google.clone()).await.unwrap());
    assert!(
        !users.link_identity(ada.id, google.clone()).await.unwrap(),
        "linking again changes nothing"
    );
    let stolen = users.link_identity(bob.id, google.clone()).await;
    assert!(
        matches!(stolen, Err(StoreError::Conflict("identity"))),
        "{stolen:?}"
    );
    let github = ExternalIdentity::new("https://github.com", "ada", at(3));
    assert!(users.link_identity(ada.id, github.clone()).await.unwrap());
    // Subjects are case-sensitive: another subject is another person.
    let other = ExternalIdentity::new(GOOGLE, "1078 'ADA'; --", at(6));
    assert!(users.link_identity(bob.id, other.clone()).await.unwrap());

    let found = |issuer: &'static str, subject: &'static str| {
        let users = Arc::clone(&users);
        async move {
            users
                .user_by_identity(issuer, subject)
                .await
                .unwrap()
                .map(|u| u.id)
        }
    };
    assert_eq!(found(GOOGLE, "1078 'ada'; --").await, Some(ada.id));
    assert_eq!(found(GOOGLE, "1078 'ADA'; --").await, Some(bob.id));
    assert_eq!(
        found("https://accounts.google.com/", "1078 'ada'; --").await,
        None
    );
    assert_eq!(found(GOOGLE, "ada\0").await, None);
    assert_eq!(
        users.identities_of(ada.id).await.unwrap(),
        vec![github.clone(), google.clone()],
        "oldest first"
    );
    assert!(
        !users
            .unlink_identity(bob.id, GOOGLE, "1078 'ada'; --")
            .await
            .unwrap(),
        "only its owner unlinks it"
    );
    assert!(
        users
            .unlink_identity(ada.id, GOOGLE, "1078 'ada'; --")
            .await
            .unwrap()
    );
    assert_eq!(found(GOOGLE, "1078 'ada'; --").await, None);
    assert_eq!(users.identities_of(ada.id).await.unwrap(), vec![github]);
    assert!(
        users.link_identity(bob.id, google).await.unwrap(),
        "free again"
    );

    let orphan = users
        .link_identity(UserId(424_242), ExternalIdentity::new(GOOGLE, "x", at(0)))
        .await;
    assert!(matches!(orphan, Err(StoreError::Corrupt(_))), "{orphan:?}");
    for (issuer, subject, field) in [
        ("", "x", "issuer"),
        (GOOGLE, "", "subject"),
        (GOOGLE, "a\0", "subject"),
        ("i\0", "x", "issuer"),
    ] {
        let refused = users
            .link_identity(ada.id, ExternalIdentity::new(issuer, subject, at(0)))
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput(f)) if f == field),
            "{issuer:?} {subject:?}: {refused:?}"
        );
    }
    let long = "s".repeat(validate::MAX_SUBJECT_LEN);
    assert!(
        users
            .link_identity(ada.id, ExternalIdentity::new(GOOGLE, long, at(0)))
            .await
            .unwrap()
    );
}

/// Of twenty users linking one identity at once, exactly one holds it.
pub async fn concurrent_links_of_one_identity_have_exactly_one_owner(stores: Stores) {
    let Stores { users, .. } = stores;
    for round in 0..5 {
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push(user(&*users, &format!("u{round}-{n}")).await.id);
        }
        let subject = format!("contested-{round}");
        let links = ids.iter().map(|&id| {
            let (users, subject) = (Arc::clone(&users), subject.clone());
            tokio::spawn(async move {
                let identity = ExternalIdentity::new("https://idp.example", subject, at(1));
                users.link_identity(id, identity).await
            })
        });
        let mut owners = Vec::new();
        for (outcome, id) in join_all(links).await.into_iter().zip(&ids) {
            match outcome.unwrap() {
                Ok(true) => owners.push(*id),
                Err(StoreError::Conflict("identity")) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(owners.len(), 1, "round {round}: {owners:?}");
        let holder = users
            .user_by_identity("https://idp.example", &subject)
            .await
            .unwrap()
            .map(|u| u.id);
        assert_eq!(holder, Some(owners[0]));
    }
}
