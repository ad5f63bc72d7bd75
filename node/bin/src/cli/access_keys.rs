//! `cluster create-access-key`, `list-access-keys`, `delete-access-key`: the keys the
//! AWS CLI, boto3 and the SDKs sign CodeDeploy's protocol with.

use fleetmesh_model::{
    CreateAccessKeyInput, CreateAccessKeyOutput, DeleteAccessKeyInput, Empty, ListAccessKeysInput, ListAccessKeysOutput,
};

use super::client::{ApiClient, ClientError};
use super::table::Table;
use super::watch::utc;

/// `cluster create-access-key`: prints the secret, once.
pub(super) fn create(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let key: CreateAccessKeyOutput = client.call("CreateAccessKey", &CreateAccessKeyInput {})?;
    if json {
        let shown = serde_json::json!({
            "accessKeyId": key.access_key_id,
            "secretAccessKey": key.secret_access_key,
        });
        println!("{shown}");
        return Ok(());
    }
    println!("accessKeyId:     {}", key.access_key_id);
    println!("secretAccessKey: {}", key.secret_access_key);
    eprintln!(
        "the secret is shown this once; use it as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with \
         `aws --endpoint-url https://NODE:PORT --ca-bundle DIR/ca.pem deploy ...`"
    );
    Ok(())
}

/// `cluster list-access-keys`.
pub(super) fn list(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let answer: ListAccessKeysOutput = client.call("ListAccessKeys", &ListAccessKeysInput {})?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    let mut table = Table::new(&["ACCESS KEY ID", "CREATED", "CREATED BY"]);
    for key in &answer.access_keys {
        let by = key.created_by.clone().unwrap_or_else(|| "-".to_string());
        table.row(vec![key.access_key_id.clone(), utc(Some(key.create_time)), by]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `cluster delete-access-key`.
pub(super) fn delete(client: &ApiClient, access_key_id: String) -> Result<(), ClientError> {
    let input = DeleteAccessKeyInput { access_key_id: access_key_id.clone() };
    client.call::<_, Empty>("DeleteAccessKey", &input)?;
    println!("deleted access key {access_key_id}; requests signed with it are refused");
    Ok(())
}
