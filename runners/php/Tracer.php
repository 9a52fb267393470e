<?php

// The tests' side of the PHP runner: a PHPUnit extension whose tracer sends one JSON line
// per event that the report needs over the runner's channel (a socket the parent reads),
// and the capture of what a test prints. It runs in the tests' own process, so nothing it
// sends is trusted by the parent beyond its shape.

declare(strict_types=1);

namespace Sandboxd\PhpRunner;

use PHPUnit\Event\Code\TestMethod;
use PHPUnit\Event\Code\Throwable as EventThrowable;
use PHPUnit\Event\Event;
use PHPUnit\Event\Test;
use PHPUnit\Event\TestRunner;
use PHPUnit\Event\Tracer\Tracer as TracerInterface;
use PHPUnit\Runner\Extension\Extension as ExtensionInterface;
use PHPUnit\Runner\Extension\Facade;
use PHPUnit\Runner\Extension\ParameterCollection;
use PHPUnit\TextUI\Configuration\Configuration;

final class Channel
{
    /** @var (callable(string): int)|null writes bytes to the runner's socket, returns how many */
    public static $write = null;

    public static function send(array $event): void
    {
        if (self::$write === null) {
            return;
        }
        $line = json_encode($event, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
            | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
        if ($line === false) {
            return;
        }
        $line .= "\n";
        // a blocking socket, written with write(2) itself: PHP's socket streams refuse to
        // write once exit() has begun, and the last event is sent then
        for ($off = 0, $len = strlen($line); $off < $len; $off += $n) {
            $n = (self::$write)(substr($line, $off));
            if ($n <= 0) {
                return;
            }
        }
    }
}

/**
 * What a test prints. PHPUnit buffers it in memory without a bound (ob_start() at the
 * start of each test); once the test is prepared, that buffer is replaced by one of the
 * same level with a chunk size, whose handler keeps the first KEEP bytes for the report
 * and lets the rest through to the real stdout, where the job's output limit counts it.
 * PHPUnit still collects what is left in the buffer when the test ends.
 */
final class Capture
{
    private const KEEP = 4096;
    private const CHUNK = 262144;

    public static string $kept = '';
    public static bool $active = false;

    public static function begin(): void
    {
        self::$kept = '';
        self::$active = false;
        if (ob_get_level() < 1) {
            return;
        }
        $before = ob_get_contents();
        if (!@ob_end_clean()) {
            return;
        }
        ob_start([self::class, 'handle'], self::CHUNK);
        self::$active = true;
        if (is_string($before) && $before !== '') {
            echo $before;
        }
    }

    public static function handle(string $buffer, int $phase): string
    {
        if ($phase & PHP_OUTPUT_HANDLER_CLEAN) {
            return ''; // PHPUnit took the contents (ob_get_clean) or the test cleaned it
        }
        $room = self::KEEP - strlen(self::$kept);
        if ($room > 0) {
            self::$kept .= substr($buffer, 0, $room);
            $buffer = (string)substr($buffer, $room);
        }
        return $buffer;
    }

    /** What the tests' process printed outside any test (the first 8 KiB): PHPUnit's own
     * word when it stops before running a test ("Class LeapTest cannot be found in ..."). */
    public static string $printed = '';

    /** The outermost buffer's handler (chunk size 1): everything passes on at once. */
    public static function outer(string $buffer, int $phase): string
    {
        if (strlen(self::$printed) < 8192) {
            self::$printed .= substr($buffer, 0, 8192 - strlen(self::$printed));
        }
        return $buffer;
    }

    /** What the running test has printed so far (at a premature end). */
    public static function sofar(): string
    {
        $rest = self::$active && ob_get_level() > 0 ? ob_get_contents() : '';
        return self::$kept . (is_string($rest) ? $rest : '');
    }
}

final class Extension implements ExtensionInterface
{
    public function bootstrap(Configuration $configuration, Facade $facade, ParameterCollection $parameters): void
    {
        $facade->registerTracer(new Tracer());
    }
}

final class Tracer implements TracerInterface
{
    private string $remainder = '';

    public function trace(Event $event): void
    {
        try {
            $this->handle($event);
        } catch (\Throwable $e) {
            // a test class that reflection cannot read: the event without its details
        }
    }

    private function handle(Event $event): void
    {
        if ($event instanceof Test\PreparationStarted) {
            $this->remainder = '';
            Channel::send(['e' => 'start'] + self::describe($event->test()));
        } elseif ($event instanceof Test\Prepared) {
            Capture::begin();
        } elseif ($event instanceof Test\Passed) {
            Channel::send(['e' => 'result', 'status' => 'pass'] + self::describe($event->test()));
        } elseif ($event instanceof Test\Failed) {
            Channel::send(['e' => 'result', 'status' => 'fail',
                'message' => self::message($event->test(), $event->throwable())] + self::describe($event->test()));
        } elseif ($event instanceof Test\Errored) {
            Channel::send(['e' => 'result', 'status' => 'error',
                'message' => self::message($event->test(), $event->throwable())] + self::describe($event->test()));
        } elseif ($event instanceof Test\Skipped || $event instanceof Test\MarkedIncomplete) {
            Channel::send(['e' => 'skip']);
        } elseif ($event instanceof Test\PrintedUnexpectedOutput) {
            $this->remainder = $event->output();
        } elseif ($event instanceof Test\Finished) {
            $output = Capture::$kept . $this->remainder;
            Capture::$kept = '';
            Capture::$active = false;
            $this->remainder = '';
            Channel::send(['e' => 'end', 'output' => $output]);
        } elseif ($event instanceof Test\BeforeFirstTestMethodErrored) {
            Channel::send(['e' => 'class_error', 'message' => trim($event->throwable()->asString())]);
        } elseif ($event instanceof TestRunner\WarningTriggered || $event instanceof TestRunner\ErrorTriggered) {
            Channel::send(['e' => 'runner_warning', 'message' => $event->message()]);
        } elseif ($event instanceof TestRunner\Finished) {
            Channel::send(['e' => 'done']);
        }
    }

    private static function message(\PHPUnit\Event\Code\Test $test, EventThrowable $throwable): string
    {
        $head = $test instanceof TestMethod ? $test->nameWithClass() : $test->name();
        return $head . "\n" . trim($throwable->asString());
    }

    /** name, test_code and task_id as Exercism's PHP test runner derives them */
    private static function describe(\PHPUnit\Event\Code\Test $test): array
    {
        if (!$test instanceof TestMethod) {
            return ['id' => $test->id(), 'name' => $test->name()];
        }
        $out = ['id' => $test->id(), 'name' => $test->testDox()->prettifiedMethodName()];
        try {
            $method = new \ReflectionMethod($test->className(), $test->methodName());
        } catch (\ReflectionException $e) {
            return $out;
        }
        $file = $method->getFileName();
        $lines = is_string($file) ? @file($file) : false;
        if (is_array($lines) && $method->getStartLine() !== false) {
            // the body of a PSR-12 method: from the line after its opening brace to the line
            // before its closing one, unindented by two levels of four spaces
            $start = $method->getStartLine() + 1;
            $length = $method->getEndLine() - 1 - $start;
            $code = array_map(
                static fn (string $l): string => str_starts_with($l, '        ') ? substr($l, 8) : $l,
                array_slice($lines, $start, max(0, $length)),
            );
            $out['test_code'] = implode('', $code);
        }
        $doc = $method->getDocComment();
        if (is_string($doc) && preg_match('/@task_id\s+(\d+)/', $doc, $m) === 1 && (int)$m[1] > 0) {
            $out['task_id'] = (int)$m[1];
        }
        return $out;
    }
}
