"""batch/v1 protobuf bodies (what `kubectl create job|cronjob` sends) decode to the JSON
shape, with Go pointer semantics: a present zero (`backoffLimit: 0`, `suspend: false`)
survives, as it must for a Job."""

from shoal.apiserver import protobuf as pb


def test_job_and_cronjob_round_trip():
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default"},
           "spec": {"backoffLimit": 0, "suspend": False, "completions": 5, "parallelism": 2,
                    "completionMode": "Indexed",
                    "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
                        "operator": "In", "values": [42]}}]},
                    "template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}}}}
    back = pb.decode_body(pb.encode_body(job))
    assert back["spec"]["backoffLimit"] == 0 and back["spec"]["suspend"] is False
    assert back["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [42]
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "nightly", "namespace": "default"},
               "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris",
                        "jobTemplate": {"spec": {"template": job["spec"]["template"]}}}}
    back = pb.decode_body(pb.encode_body(cronjob))
    assert back["spec"]["schedule"] == "0 3 * * *" and back["spec"]["timeZone"] == "Europe/Paris"
    assert back["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
