"""Create the AWS side of test_aws.py in a fresh moto_server.

Run by the pyenv python that has boto3 (not /usr/bin/python3):
    python3 aws_setup.py http://127.0.0.1:PORT
Prints one JSON object: key ids and the IAM users' access keys.

moto_server runs with INITIAL_NO_AUTH_ACTION_COUNT=3 (AWS_SETUP_FREE_ACTIONS
below): the first three requests create an admin user, its policy and its
access key without authentication; every later request, including the rest
of this setup, is checked by moto (SigV4 signature and IAM policy).
"""
import json
import sys

import boto3

AWS_SETUP_FREE_ACTIONS = 3
REGION = "us-east-1"
# Sessions of the container role handed out one per credential fetch.
AWS_SETUP_SESSIONS = 4

# kms:ReEncrypt* covers ReEncryptFrom and ReEncryptTo (moto checks the
# action kms:ReEncrypt).
POLICIES = {
    "enc": ["kms:Encrypt", "kms:GenerateDataKey"],
    "dec": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt",
            "kms:ReEncrypt*"],
    "reenc": ["kms:ReEncrypt*"],
}


def policy(actions):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}]})


def main():
    url = sys.argv[1]
    anon = dict(endpoint_url=url, region_name=REGION,
                aws_access_key_id="AKIASETUPSETUPSETUP0",
                aws_secret_access_key="setup")
    iam = boto3.client("iam", **anon)
    # The three unauthenticated actions.
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all",
                        PolicyDocument=policy("*"))
    ak = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = dict(endpoint_url=url, region_name=REGION,
                 aws_access_key_id=ak["AccessKeyId"],
                 aws_secret_access_key=ak["SecretAccessKey"])
    out = {"admin": {"id": ak["AccessKeyId"],
                     "secret": ak["SecretAccessKey"]}}

    # From here on moto verifies every signature and policy.
    iam = boto3.client("iam", **admin)
    kms = boto3.client("kms", **admin)
    for name in ("a", "b"):
        meta = kms.create_key(Description=f"kmsd test key {name}")
        out["key_" + name] = {"id": meta["KeyMetadata"]["KeyId"],
                              "arn": meta["KeyMetadata"]["Arn"]}
    kms.create_alias(AliasName="alias/kmsd-test",
                     TargetKeyId=out["key_a"]["id"])
    # A key in another region: rewrap across regions cannot use ReEncrypt.
    west = boto3.client("kms", **dict(admin, region_name="us-west-2"))
    meta = west.create_key(Description="kmsd test key c (us-west-2)")
    out["key_c"] = {"id": meta["KeyMetadata"]["KeyId"],
                    "arn": meta["KeyMetadata"]["Arn"]}
    for user, actions in POLICIES.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="kms",
                            PolicyDocument=policy(actions))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
    # A role for the container-credentials case: its temporary
    # credentials (access key, secret, session token) are what a container
    # agent would hand out; moto checks the token and the role's policy.
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName="kmsd-ecs",
                           AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(RoleName="kmsd-ecs", PolicyName="kms",
                        PolicyDocument=policy(POLICIES["dec"]))
    sts = boto3.client("sts", **admin)
    out["ecs"] = []
    for i in range(AWS_SETUP_SESSIONS):
        c = sts.assume_role(RoleArn=role["Arn"],
                            RoleSessionName=f"ecs-{i}")["Credentials"]
        out["ecs"].append({"id": c["AccessKeyId"],
                           "secret": c["SecretAccessKey"],
                           "token": c["SessionToken"]})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
