//! The [`UserStore`](crate::store::UserStore) requirements.

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
