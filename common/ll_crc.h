/* ll_crc — the two CRC-16 variants our instrument protocols use.
 *
 * CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF): Modbus RTU frames and the robot's
 * job-block check; check value for "123456789" is 0x4B37; sent low byte first on RTU.
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR): the SPN/1
 * spin-coater line protocol; check value for "123456789" is 0x29B1.
 * References: Modbus over Serial Line v1.02 §6.2.2; ../shared/reference/hardware.md §2.3.
 */
#ifndef LL_CRC_H
#define LL_CRC_H

#include <stddef.h>
#include <stdint.h>

uint16_t ll_crc16_modbus(const uint8_t *data, size_t len);
uint16_t ll_crc16_ccitt_false(const uint8_t *data, size_t len);

#endif
