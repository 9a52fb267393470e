<?php

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

class LitterTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once 'Litter.php';
    }

    public function testAnswer(): void
    {
        $this->assertSame(42, answer());
    }
}
