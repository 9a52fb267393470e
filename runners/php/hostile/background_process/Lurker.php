<?php

function answer(): int
{
    // a grandchild that outlives the test, detached into a session of its own
    $pid = pcntl_fork();
    if ($pid === 0) {
        posix_setsid();
        if (pcntl_fork() === 0) {
            fclose(STDOUT);
            while (true) {
                sleep(1);
            }
        }
        exit(0);
    }
    pcntl_waitpid($pid, $status);
    return 42;
}
