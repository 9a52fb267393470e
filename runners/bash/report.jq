# results.json v3 from report.awk's records (read with jq -R -s): fields split by \u001f,
# records ended by \u001e; "S" (the run's status and message) first, then one "T" per test.
def field($v; $k): if $v == "" then {} else {($k): $v} end;
[split("\u001e")[] | select(length > 0) | split("\u001f")] as $records
| ($records | map(select(.[0] == "S")) | first // ["S", "error", "The test report could not be read."]) as $s
| {version: 3, status: $s[1]}
  + field($s[2] // ""; "message")
  + {tests: [
      $records[] | select(.[0] == "T")
      | {name: .[1], status: .[2]}
        + field(.[3]; "message")
        + field(.[4]; "output")
        + field(.[5]; "test_code")
    ]}
