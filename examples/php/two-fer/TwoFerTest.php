<?php

declare(strict_types=1);

use PHPUnit\Framework\Attributes\TestDox;
use PHPUnit\Framework\TestCase;

class TwoFerTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once 'TwoFer.php';
    }

    #[TestDox('Without a name it is for you')]
    public function testWithoutAName(): void
    {
        $this->assertSame('One for you, one for me.', twoFer());
    }

    #[TestDox('With a name it is for them')]
    public function testWithAName(): void
    {
        $this->assertSame('One for Alice, one for me.', twoFer('Alice'));
    }
}
