# The report of a bats run, from its extended TAP stream (gawk; see README.md).
#
# Read from ENVIRON: tap_file (the TAP bats wrote), files_list (the test files, one a
# line, relative to input_dir), outputs_dir (bats' --gather-test-outputs-in), stderr_file
# (bats' own stderr), input_dir. Written to stdout: records for report.jq, each ended by
# RS (\x1e), fields split by US (\x1f):
#   S <status> <message>                            once, first
#   T <name> <status> <message> <output> <test_code>   per test, in run order
# Names, messages and test code follow Exercism's bash-test-runner (bin/run.sh): the
# test's name as TAP has it, the failure's "# " lines as the message, the @test body
# (unindented, skip lines left out) as its code.

function literal_replace(s, from, to,    out, i) {
    if (from == "") return s
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
    }
    return out s
}

# No path of the sandbox's in what a learner reads.
function clean(s) {
    s = literal_replace(s, input_dir "/", "")
    s = literal_replace(s, "/usr/lib/bats-core/", "")
    s = literal_replace(s, "/usr/libexec/bats-core/", "")
    gsub(/[\x1e\x1f]/, "", s)
    return s
}

# At most `limit` characters, the notice included (the daemon's own caps are 500 for a
# name, 4000 for a message or test code); output is the exception, see below.
function cut(s, limit, notice) {
    if (length(s) > limit) return substr(s, 1, limit - length(notice)) notice
    return s
}

function read_file(path,    saved_rs, text, status) {
    saved_rs = RS
    RS = "^$"
    text = ""
    status = (getline text < path)
    close(path)
    RS = saved_rs
    return status > 0 ? text : ""
}

# test_code of every @test of one file, as the track runner's get_test_bodies finds it.
function read_bodies(file,    line, state, name, body, n, indent, m, first, lineno, start) {
    state = "out"
    lineno = 0
    while ((getline line < file) > 0) {
        lineno++
        if (state == "out") {
            if (match(line, /^@test ['"](.+)['"] \{[[:blank:]]*$/, m)) {
                name = m[1]; body = ""; n = 0; state = "in"; start = lineno
                order[++norder] = name
            }
        } else if (line ~ /^\}[[:blank:]]*$/) {
            sub(/\n+$/, "", body)
            nspans++; span_file[nspans] = file; span_name[nspans] = name
            span_from[nspans] = start; span_to[nspans] = lineno
            if (!((file, name) in code)) code[file, name] = body
            if (!(name in code_by_name)) code_by_name[name] = body
            state = "out"
        } else if (line ~ /BATS_RUN_SKIPPED.*skip/) {
            continue
        } else if (n == 0 && line ~ /^[[:blank:]]*$/) {
            continue
        } else {
            if (n == 0) { match(line, /^[[:blank:]]*/); indent = substr(line, 1, RLENGTH) }
            if (indent != "" && substr(line, 1, length(indent)) == indent) line = substr(line, length(indent) + 1)
            body = body (n ? "\n" : "") line
            n++
        }
    }
    close(file)
}

function emit(a, b, c, d, e, f) {
    printf "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1e", a, b, c, d, e, f
}

function add_test(num, name, status, message, suite,    output, k, tc) {
    ntests++
    t_name[ntests] = name
    t_status[ntests] = status
    t_message[ntests] = message
    t_num[ntests] = num
    t_suite[ntests] = suite
}

# bats' warnings (BW01: `run`'s command exited with 127, "Command not found"...) are
# printed after the run; each says which line of a test file it is about. A failed test
# that holds that line gets it at the end of its message (Exercism's runner, seeing
# them in its TAP, turns the whole run into an error instead).
function attach_warnings(    text, n, parts, i, w, m, file, line, j, k) {
    text = read_file(ENVIRON["stderr_file"])
    i = index(text, "The following warnings were encountered during tests:\n")
    if (i == 0) return
    text = substr(text, i + length("The following warnings were encountered during tests:\n"))
    n = split(text, parts, /\n(BW[0-9]+:)/, seps)
    for (i = 1; i <= n; i++) {
        w = (i == 1 ? "" : substr(seps[i - 1], 2)) parts[i]
        sub(/\n+$/, "", w)
        if (!match(w, /in test file ([^\n]*), line ([0-9]+)\)$/, m)) continue
        file = m[1]; line = m[2] + 0
        for (j = 1; j <= nspans; j++) {
            if (span_from[j] > line || span_to[j] < line) continue
            if (span_file[j] != file && span_file[j] !~ ("(^|/)" file "$")) continue
            for (k = 1; k <= ntests; k++)
                if (t_status[k] == "fail" && t_name[k] == span_name[j] && length(t_message[k]) <= MESSAGE_LIMIT)
                    t_message[k] = t_message[k] "\n" w "\n"
        }
    }
}

function interrupted(num, name, suite,    f) {
    add_test(num + 0, name, "error", "The tests stopped during this test.", suite)
    if (ninterrupted++ == 0) stopped_in = name
    # its output: the ninterrupted-th of bats' files left behind, oldest first
    if ((getline f < ENVIRON["leftovers"]) > 0) t_output_file[ntests] = f
}

BEGIN {
    input_dir = ENVIRON["input_dir"]
    outputs_dir = ENVIRON["outputs_dir"]
    NOTICE = "\n...\nOutput was truncated. Please limit to 500 chars."
    NAME_LIMIT = 500; MESSAGE_LIMIT = 4000; CODE_LIMIT = 4000; OUTPUT_LIMIT = 500

    nfiles = 0
    while ((getline f < ENVIRON["files_list"]) > 0) { files[++nfiles] = f; read_bodies(f) }
    close(ENVIRON["files_list"])
    if (nfiles == 0) {
        emit("S", "error", "No tests were found. Test files must be named *.bats.", "", "", "")
        exit 0
    }

    tap = ENVIRON["tap_file"]
    # When bats cannot gather the tests of a file, it writes that (as TAP) to stderr.
    first_line = ""
    if ((getline first_line < tap) <= 0 || first_line !~ /^[0-9]+\.\.[0-9]+$/) {
        close(tap)
        first_line = ""
        if ((getline first_line < ENVIRON["stderr_file"]) > 0 && first_line ~ /^[0-9]+\.\.[0-9]+$/)
            tap = ENVIRON["stderr_file"]
        close(ENVIRON["stderr_file"])
    }
    close(tap)
    plan = -1; ntests = 0; mode = ""; begun = ""; began_any = 0; raw = ""; nraw = 0
    suite = files[1]
    first = 1
    while ((getline line < tap) > 0) {
        if (first) {
            first = 0
            if (match(line, /^([0-9]+)\.\.([0-9]+)$/, m)) { plan = m[2] - m[1] + 1; continue }
        }
        if (plan < 0) { if (nraw++ < 50) raw = raw line "\n"; continue }
        if (line ~ /^#/) {
            if (mode == "fail" && line !~ /^# bats warning: Executed [0-9]+ instead of expected [0-9]+ tests$/) {
                sub(/^# ?/, "", line)
                if (length(t_message[ntests]) <= MESSAGE_LIMIT) t_message[ntests] = t_message[ntests] line "\n"
            }
            continue
        }
        mode = ""
        if (substr(line, 1, 6) == "suite ") {
            suite = substr(line, 7)
            if (substr(suite, 1, length(input_dir) + 1) == input_dir "/") suite = substr(suite, length(input_dir) + 2)
        } else if (match(line, /^begin ([0-9]+) (.*)$/, m)) {
            # a test that began and never ended (its process was killed): an error
            if (begun != "") interrupted(begun, begun_name, suite)
            began_any = 1; begun = m[1]; begun_name = m[2]
        } else if (match(line, /^(not )?ok ([0-9]+) (.*)$/, m)) {
            name = m[3]; status = m[1] == "" ? "pass" : "fail"; message = ""
            if (status == "pass" && match(name, /^(.*) # skip( (.*))?$/, s)) {
                name = s[1]; message = s[3] != "" ? "Skipped: " s[3] : "Skipped."
            }
            add_test(m[2] + 0, name, status, message, suite)
            if (m[2] == begun) begun = ""
            if (status == "fail") mode = "fail"
        }
        # anything else (what a test wrote to fd 3 itself) is not bats' and is left out
    }
    close(tap)

    if (plan < 0) {
        msg = raw read_file(ENVIRON["stderr_file"])
        sub(/\n+$/, "", msg)
        if (msg == "") msg = "bats did not run the tests."
        emit("S", "error", cut(clean(msg), MESSAGE_LIMIT, "\n..."), "", "", "")
        exit 0
    }

    # bats could not load a test file (a syntax error, a `load` of a missing file, a
    # command failing at its top level): its "bats-gather-tests" pseudo-test.
    if (!began_any && ntests >= 1 && t_name[1] == "bats-gather-tests" && t_status[1] == "fail") {
        n = split(t_message[1], lines, "\n"); msg = ""
        for (i = 1; i <= n; i++) {
            if (lines[i] ~ /^\(in test file .*, line [0-9]+\)$/) continue
            if (lines[i] ~ /^  `.*' failed( with status [0-9]+)?$/) continue
            msg = msg lines[i] "\n"
        }
        sub(/\n+$/, "", msg)
        if (msg == "") msg = "The test file could not be loaded."
        emit("S", "error", cut(clean(msg), MESSAGE_LIMIT, "\n..."), "", "", "")
        exit 0
    }

    if (plan == 0 && ntests == 0) {
        emit("S", "error", "No tests were found: the test files have no @test.", "", "", "")
        exit 0
    }

    if (begun != "") interrupted(begun, begun_name, suite)
    # A test that began after the last result and whose `begin` line was lost (a
    # `kill 0` ends bats' pipeline too, with what it had not passed on yet): bats made
    # its run_dir/test/<n>.name as it began. Named by its place among the @test blocks.
    last = 0
    for (i = 1; i <= ntests; i++) { if (t_num[i] > last) last = t_num[i]; seen_num[t_num[i]] = 1 }
    n = last + 1
    if (n <= plan && !(n in seen_num) && (getline probe < (ENVIRON["run_dir"] "/test/" n ".name")) > 0) {
        close(ENVIRON["run_dir"] "/test/" n ".name")
        interrupted(n, (norder == plan && n in order) ? order[n] : "test " n, suite)
    }
    finished = ntests - ninterrupted
    if (stopped_in != "") {
        top_status = "error"
        top_message = "The tests stopped before finishing, during the test \"" stopped_in "\"."
    } else if (finished < plan) {
        top_status = "error"
        top_message = "The tests stopped before finishing: " finished " of " plan " tests ran."
    } else {
        top_status = "pass"; top_message = ""
        for (i = 1; i <= ntests; i++) if (t_status[i] != "pass") top_status = "fail"
    }
    emit("S", top_status, cut(clean(top_message), MESSAGE_LIMIT, "..."), "", "", "")

    attach_warnings()

    for (i = 1; i <= ntests; i++) {
        name = t_name[i]
        if (i in t_output_file) output = read_file(t_output_file[i])
        else output = read_file(outputs_dir "/" t_num[i] "-" gensub(/\//, "%2F", "g", name) ".log")
        if ((t_suite[i], name) in code) tc = code[t_suite[i], name]
        else if (name in code_by_name) tc = code_by_name[name]
        else tc = ""
        output = clean(output)
        # Exercism's rule: 500 characters, then the notice
        if (length(output) > OUTPUT_LIMIT) output = substr(output, 1, OUTPUT_LIMIT) NOTICE
        emit("T", cut(clean(name), NAME_LIMIT, "…"), t_status[i], cut(clean(t_message[i]), MESSAGE_LIMIT, "\n..."),
             output, cut(clean(tc), CODE_LIMIT, "\n..."))
    }
}
