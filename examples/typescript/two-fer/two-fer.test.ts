import { describe, expect, it, xit } from '@jest/globals'
import { twoFer } from './two-fer.ts'

describe('TwoFer', () => {
  it('no name given', () => {
    expect(twoFer()).toEqual('One for you, one for me.')
  })

  xit('a name given', () => {
    expect(twoFer('Alice')).toEqual('One for Alice, one for me.')
  })

  xit('another name given', () => {
    expect(twoFer('Bob')).toEqual('One for Bob, one for me.')
  })
})
